"""The real-estate default's answers, recorded once and compared byte for byte.

    python tests/scoring/default_contract/golden.py --write [--code DIR]   # record
    python tests/scoring/default_contract/golden.py                        # compare

`bundle/` is a small real-estate bundle (400 generated leads, tiny hyperparameters, the
training code of main before the custom-schema work; its report files left out). The
recorded answers are the score function's HTTP answers for the sample events
(events/score_request.json is the seed's sample lead) with `prediction_timestamp` and
`model_version` masked: everything else must stay byte-identical while the product learns
other schemas. `--code DIR` records with another checkout's code: the golden file is made with
main's code *without* the custom-schema work (first at daea459; re-recorded at 9f6e4dc, whose
400 answers gained `error_count` on purpose, for bounded answers; re-recorded when the
monotone ensemble came, whose rules score turns `days_on_market_ratio` downward like the
feature contract's direction: only `composite_score` moved, 67.8 -> 69.8 for the sample
lead; re-recorded when answers began to say which model scope served them: only
`"model_scope":"agency"` was added to each scored answer), so the test proves this work
changed nothing. A lane that changes the default answer
on purpose re-records it the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
GOLDEN = HERE / "answers.json"
EVENTS = ("score_request", "score_request_noexplain", "score_request_vector", "score_batch",
          "score_invalid")
MASKS = (
    (re.compile(r'"prediction_timestamp": ?"[^"]*"'), '"prediction_timestamp": "<time>"'),
    (re.compile(r'"model_version": ?"[^"]*"'), '"model_version": "<version>"'),
)

SCRIPT = """
import json, sys
from functions.score import app

class Ctx:
    function_name = "ScoreFunction"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ScoreFunction"
    aws_request_id = "golden"

out = {}
for name in sys.argv[3:]:
    app.set_container(None)  # a fresh container per event: no cache hits between events
    event = json.load(open(sys.argv[2] + "/events/" + name + ".json"))
    answer = app.lambda_handler(event, Ctx())
    out[name] = {"status": answer["statusCode"], "body": answer["body"]}
print("GOLDEN " + json.dumps(out))
"""


def mask(body: str) -> str:
    for pattern, replacement in MASKS:
        body = pattern.sub(replacement, body)
    return body


def record(code: Path) -> dict[str, dict[str, object]]:
    """Every event's masked answer, computed in a fresh process by the code at `code`."""
    env = {"MODEL_URI": f"file://{HERE / 'bundle'}", "POWERTOOLS_TRACE_DISABLED": "true",
           "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring", "PATH": "/usr/bin:/bin",
           "OPENBLAS_NUM_THREADS": "1", "HOME": os.environ.get("HOME", "/tmp"),
           # the code tree given (--code, an older checkout too) before the installed one
           "PYTHONPATH": os.pathsep.join([f"{code}/layers/shared/python", str(code)])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(code), str(ROOT), *EVENTS],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("GOLDEN "))
    answers: dict[str, dict[str, object]] = json.loads(line.removeprefix("GOLDEN "))
    for value in answers.values():
        value["body"] = mask(str(value["body"]))
    return answers


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--code", type=Path, default=ROOT)
    args = parser.parse_args()
    got = record(args.code.resolve())
    if args.write:
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
        return 0
    want = json.loads(GOLDEN.read_text())
    same = got == want
    print("identical" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
