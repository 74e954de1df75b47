"""`make demo`: the whole product on one machine, no AWS.

1. generate synthetic leads (training/generate_leads.py),
2. train the stacked ensemble into .demo/bundle (training/train.py),
3. promote it into the local model store .demo/store (tools/modelctl.py; the gate measures it
   on held-out leads of another generator seed),
4. score every API request in events/ through the real handler (functions/score/app.py) with
   MODEL_URI=file://.../champion.json, and print a table: contact, score, class, interval and
   the top reasons.

The marketplace webhook sample is signed on the fly with a throwaway Ed25519 key (HighLevel's
real key signs real webhooks); the workflow sample carries its shared secret header.
Steps 1-3 are skipped when their output exists (delete .demo/ to start over).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)  # noqa: S603


def prepare_model(rows: int, seed: int) -> Path:
    leads = DEMO / "leads.csv"
    held_out = DEMO / "held_out.csv"  # leads the model never trains on: the gate measures it
    bundle = DEMO / "bundle"
    store = DEMO / "store"
    DEMO.mkdir(exist_ok=True)
    if not leads.exists():
        run("training/generate_leads.py", "--rows", str(rows), "--seed", str(seed),
            "--format", "csv", "--output", str(leads))
    if not held_out.exists():
        run("training/generate_leads.py", "--rows", str(max(rows // 4, 500)), "--seed",
            str(seed + 1), "--format", "csv", "--output", str(held_out))
    if not (bundle / "manifest.json").exists():
        run("training/train.py", "--input", str(leads), "--output", str(bundle),
            "--random-seed", str(seed))
    champion = store / "models" / "champion.json"
    if not champion.exists():
        run("-m", "tools.modelctl", "--store", str(store), "promote", str(bundle),
            "--eval", str(held_out))
    return champion


# How the marketplace sample's custom field ids map onto the flat names of docs/FEATURES.md: what a
# deployment sets in the GhlFieldMap parameter for its own sub-account's field ids.
DEMO_FIELD_MAP = {
    "fld_list_price_01": "list_price", "fld_beds_02": "beds", "fld_baths_03": "baths",
    "fld_sqft_04": "sqft", "fld_condition_05": "condition", "fld_dom_06": "days_on_market",
    "fld_urgency_07": "urgency_level", "fld_motivation_08": "motivation_type",
    "fld_pcs_09": "psychological_commitment_score", "fld_comparables_10": "comparables",
}


def sign_marketplace(event: dict[str, Any]) -> str:
    """Give the marketplace sample a fresh timestamp and a signature; return the public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    body = json.loads(event["body"])
    body["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    event["body"] = json.dumps(body)
    event["headers"]["x-ghl-signature"] = base64.b64encode(
        key.sign(event["body"].encode())).decode()
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def api_events() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted((ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        if "httpMethod" in event:
            out.append((path.name, event))
    return out


def reasons(result: dict[str, Any], n: int = 2) -> str:
    factors = result.get("top_positive_factors") or []
    text = "; ".join(str(f.get("reason") or f.get("feature")) for f in factors[:n])
    return text or ("(explain=false)" if not result.get("explained", True) else "-")


def rows_for(name: str, status: int, body: dict[str, Any]) -> list[list[str]]:
    def lead_row(label: str, r: dict[str, Any]) -> list[str]:
        lo, hi = r.get("confidence_interval", [float("nan"), float("nan")])
        return [label, str(status), str(r.get("contact_id", "")),
                f"{r['predicted_score']:.3f}", str(r["predicted_class"]),
                f"[{lo:.2f}, {hi:.2f}]", reasons(r)]

    if "predicted_score" in body:
        return [lead_row(name, body)]
    if "results" in body:
        return [lead_row(f"{name}[{i}]", r) for i, r in enumerate(body["results"])]
    score = body.get("score") if isinstance(body.get("score"), dict) else None
    if score and "predicted_score" in score:
        return [lead_row(f"{name} ({body.get('status', '')})", score)]
    if status == 400:
        paths = ", ".join(e["path"] for e in body.get("errors", []))
        return [[name, str(status), "", "", "", "", f"rejected: {paths}"]]
    summary = {k: body[k] for k in ("model_version", "loaded", "status") if k in body}
    return [[name, str(status), "", "", "", "", json.dumps(summary)]]


def print_table(rows: list[list[str]]) -> None:
    header = ["event", "http", "contact", "score", "class", "95% interval", "top reasons"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))
    print(line + "  " + header[6])
    print("-" * (len(line) + 40))
    for r in rows:
        cells = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))
        wrapped = textwrap.wrap(r[6], 70) or [""]
        print(cells + "  " + wrapped[0])
        for more in wrapped[1:]:
            print(" " * (len(cells) + 2) + more)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    champion = prepare_model(args.rows, args.seed)
    events = api_events()
    public_pem = ""
    secret = ""
    for _, event in events:
        headers = event["headers"]
        if "x-ghl-signature" in headers:
            public_pem = sign_marketplace(event)
        secret = headers.get("x-leadscore-secret", secret)
    os.environ.update({
        "MODEL_URI": champion.as_uri(),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "LeadScoring",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "LOG_LEVEL": "WARNING",
        "GHL_PUBLIC_KEY_ED25519": public_pem,
        "GHL_WEBHOOK_SECRET": secret,
        "GHL_FIELD_MAP": json.dumps(DEMO_FIELD_MAP),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    })
    for name in ("CACHE_TABLE", "WRITEBACK_QUEUE_URL"):
        os.environ.pop(name, None)  # in-memory cache only; nothing is queued locally
    import io
    from contextlib import redirect_stdout

    from functions.score import app
    from tools.lambda_context import lambda_context

    rows: list[list[str]] = []
    for name, event in events:
        with redirect_stdout(io.StringIO()):  # EMF metric lines
            answer = app.lambda_handler(event, lambda_context("lead-scoring-ScoreFunction"))
        rows += rows_for(name, int(answer["statusCode"]), json.loads(answer["body"]))
    print()
    print(f"model: {json.loads(champion.read_text())['version']}  (store {champion.parent.parent})")
    print_table(rows)
    print("\nNext: `make serve` for the same API on http://127.0.0.1:3000, `make test`.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
