"""Backfill a location: score every existing contact, queue its write-back (docs/LOOP.md).

    ./leadscore backfill --location <locationId> [--outcomes] [--restart]
    ./leadscore backfill --location <locationId> --async --function <name>

In-process (the default) it runs the function's handler (functions/backfill/app.py) with the
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

#: The in-process run's Lambda time: a week, so it pages to the end.
IN_PROCESS_MS = 7 * 24 * 3600 * 1000


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
    from leadscore.wiring.loop import loop_settings

    settings = loop_settings()
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

    # The function itself, in this process: its handler with a context whose time never runs
    # out (a run that stops early is resumed from the checkpoint by running this again).
    # Progress is the handler's own log line after every page ("backfill progress").
    from functions.backfill.app import lambda_handler
    from tools.lambda_context import lambda_context

    final = lambda_handler(event, lambda_context("BackfillFunction", timeout_ms=IN_PROCESS_MS))
    print(json.dumps({key: final.get(key) for key in
                      ("finished", "done", "total", "scored", "failed")}))
    return 0 if final.get("finished") else 1

if __name__ == "__main__":
    sys.exit(main())
