"""Powertools Tracer for every function, without the X-Ray SDK where nothing would be traced.

Powertools builds its X-Ray provider eagerly, which imports `aws_xray_sdk.core` (and botocore)
even when tracing is disabled: ~230 ms of a ~400 ms cold start on the benchmark machine.
Where Powertools itself decides tracing is off (outside Lambda, under `sam local`, or with
`POWERTOOLS_TRACE_DISABLED`) the tracer gets a no-op provider instead; in Lambda with
`Tracing: Active` it is the ordinary X-Ray tracer, and that cold start pays for the SDK.
"""

from __future__ import annotations

import contextlib
import numbers
import traceback
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(
        self, exception: BaseException, stack: list[traceback.StackSummary], remote: bool = False
    ) -> None:
        return None


class _NoTracing(BaseProvider):
    @contextlib.contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(
        self, name: Any = None, **kwargs: Any
    ) -> AsyncGenerator[BaseSegment, None]:
        yield _NoSegment()

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Sequence[str]) -> None:
        return None

    def patch_all(self) -> None:
        return None


def make_tracer(service: str) -> Tracer:
    """The function's module-level Tracer (see the module docstring)."""
    if Tracer._is_tracer_disabled():
        return Tracer(service=service, disabled=True, provider=_NoTracing())
    return Tracer(service=service)
