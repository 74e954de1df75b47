"""One token bucket per location, so one sub-account's burst is throttled alone.

API Gateway's usage plans throttle per API key, and an account has a few hundred of them at
most: they cannot give thousands of sub-accounts a bucket each. This is the bucket a
container keeps per location (bounded: the least recently seen locations are forgotten,
which is what an idle location's bucket is anyway: full). Each container refills its own
buckets, so a location gets at most ``containers x rate`` across the stack; where an exact
stack-wide limit is wanted, the same arithmetic over one DynamoDB item per location with a
version-conditional write (as the write-back's HighLevel budget does) is the next step, at one
extra write per call.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Locations remembered per container (each bucket is two floats).
MAX_LOCATIONS = 10_000


class LocationBuckets:
    def __init__(self, rate_per_second: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 max_locations: int = MAX_LOCATIONS) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("rate_per_second must be > 0 and burst >= 1")
        self.rate = rate_per_second
        self.burst = float(burst)
        self._clock = clock
        self._max = max_locations
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, location_id: str) -> float:
        """0.0 when the call may go ahead (a token is taken), else the seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(location_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[location_id] = (tokens, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return wait
