"""Backfill a location: score every existing contact, queue its write-back (docs/LOOP.md).

    .venv/bin/python tools/backfill.py --location <locationId> [--outcomes] [--restart]
    .venv/bin/python tools/backfill.py --location <locationId> --async --function <name>

In-process (the default) it runs the job's own code (functions/backfill/app.py ``run``) with the
stack's settings from the environment (MODEL_URI, WRITEBACK_QUEUE_URL, GHL_TOKEN_SECRET_ARN,
RECORD_STREAM, CACHE_TABLE, ...) and prints progress after every page: done / total, rate, ETA.
Ctrl-C is safe: the checkpoint is saved after every page, and the next run resumes from it.
``--async`` starts the BackfillFunction instead (it re-invokes itself until done) and follows
its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "layers" / "shared" / "python", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location", required=True, help="HighLevel locationId")
    parser.add_argument("--job", default="default", help="job id (one checkpoint per job)")
    parser.add_argument("--outcomes", action="store_true",
                        help="also import closed opportunities (not point-in-time)")
    parser.add_argument("--restart", action="store_true", help="ignore the saved checkpoint")
    parser.add_argument("--async", dest="run_async", action="store_true",
                        help="start the BackfillFunction and follow its checkpoint")
    parser.add_argument("--function", default="", help="the BackfillFunction's name (--async)")
    args = parser.parse_args(argv)
    event = {"location_id": args.location, "job_id": args.job, "outcomes": args.outcomes,
             "restart": args.restart}

    from leadscore.adapters.loop_tables import DynamoCheckpoints
    from leadscore.settings import LoopSettings

    settings = LoopSettings.from_env()
    if not settings.loop_table:
        print("CACHE_TABLE (or LOOP_TABLE) must name the table that holds the checkpoint",
              file=sys.stderr)
        return 2
    checkpoints = DynamoCheckpoints(settings.loop_table)

    if args.run_async:
        from leadscore.adapters import client

        name = args.function or settings.backfill_function_name
        if not name:
            print("--function (or BACKFILL_FUNCTION_NAME) is required with --async",
                  file=sys.stderr)
            return 2
        client("lambda").invoke(FunctionName=name, InvocationType="Event",
                                Payload=json.dumps(event).encode())
        print(f"started {name} for {args.location}; following its checkpoint (Ctrl-C stops "
              "following, not the job)")
        started = time.time()
        while True:
            time.sleep(10)
            cp = checkpoints.load(args.location, args.job)
            if cp is None:
                continue
            elapsed = max(time.time() - started, 1e-9)
            rate = cp.done / elapsed
            eta = (cp.total - cp.done) / rate if rate > 0 else float("nan")
            print(f"{args.location}: {cp.done:,}/{cp.total:,} {rate:,.1f}/s ETA {eta:,.0f}s "
                  f"scored={cp.scored} failed={cp.failed}", flush=True)
            if cp.finished:
                return 0

    sys.path.insert(0, str(ROOT / "functions" / "backfill"))
    import app as backfill_app  # the function's own module

    backfill_app._log_progress = lambda p: print(p.line(), flush=True)
    final = backfill_app.run(event, checkpoints=checkpoints, deadline=None)
    print(json.dumps({"finished": final.finished, "done": final.done, "total": final.total,
                      "scored": final.scored, "failed": final.failed}))
    return 0 if final.finished else 1


if __name__ == "__main__":
    sys.exit(main())
