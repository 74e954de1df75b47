"""cfn-lint and checkov on the TRANSFORMED template, every finding fixed or accepted with a reason.

CloudFormation never sees template.yaml: it sees what the SAM transform makes of it
(`tools/sam_transform.py --out .build/transformed.json`). Problems that exist only there (a
circular dependency through the resources SAM generates, the generated API stage) pass any
check of the serverless document, so both linters run on the transformed one.

A finding is accepted only when `template-skips.yaml` lists it (tool, rule id, resource) with
its reason; any other finding fails, and so does a listed skip that matched nothing (the
finding was fixed: the skip goes too). Inline skips (`Metadata: checkov` / `cfn-lint` in the
template) are refused: the list is the one place.

    python tools/check_template.py .build/transformed.json [--cfn-lint BIN] [--checkov BIN]

Exit status 0 = clean, 1 = findings (each printed with its rule and resource), 2 = usage or
a linter that did not run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess  # nosec B404 - runs the linters named on the command line
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SKIPS = ROOT / "template-skips.yaml"
TOOLS = ("cfn-lint", "checkov")


@dataclass(frozen=True)
class Finding:
    tool: str
    id: str
    resource: str  # logical id, or "Parameters/<name>" / "Outputs/<name>" / "" (template)
    message: str

    def describe(self) -> str:
        return f"{self.tool} {self.id} on {self.resource or '(template)'}: {self.message}"


@dataclass(frozen=True)
class Skip:
    tool: str
    id: str
    resources: tuple[str, ...]
    reason: str

    def covers(self, finding: Finding) -> bool:
        return (finding.tool == self.tool and finding.id == self.id
                and any(fnmatch.fnmatchcase(finding.resource, r) for r in self.resources))


class CheckError(Exception):
    """The skip list is malformed or a linter did not produce a readable answer."""


def load_skips(path: Path = SKIPS) -> list[Skip]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(entries, list):
        raise CheckError(f"{path}: a list of entries expected")
    skips = []
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) != {"tool", "id", "resources", "reason"}:
            raise CheckError(f"{path}: entry {n} needs exactly tool, id, resources, reason")
        resources = entry["resources"]
        if entry["tool"] not in TOOLS:
            raise CheckError(f"{path}: entry {n}: tool must be one of {', '.join(TOOLS)}")
        if not isinstance(resources, list) or not resources:
            raise CheckError(f"{path}: entry {n}: resources must be a non-empty list")
        if len(str(entry["reason"]).split()) < 5:
            raise CheckError(f"{path}: entry {n} ({entry['id']}): give the reason in words")
        skips.append(Skip(str(entry["tool"]), str(entry["id"]),
                          tuple(str(r) for r in resources), str(entry["reason"]).strip()))
    return skips


def inline_skips(template: dict[str, Any]) -> list[str]:
    """Resources of the document that carry their own linter skips."""
    out = []
    for section in ("Resources", "Parameters", "Outputs"):
        for name, body in (template.get(section) or {}).items():
            metadata = (body or {}).get("Metadata") or {}
            if isinstance(metadata, dict) and {"checkov", "cfn-lint"} & set(metadata):
                out.append(f"{section}/{name}")
    if {"checkov", "cfn-lint"} & set(template.get("Metadata") or {}):
        out.append("Metadata")
    return out


def cfn_lint_findings(output: str) -> list[Finding]:
    """cfn-lint's `-f json` answer as findings."""
    try:
        matches = json.loads(output or "[]")
    except ValueError as exc:
        raise CheckError(f"cfn-lint did not answer JSON: {output[:500]!r}") from exc
    findings = []
    for match in matches:
        path = [str(p) for p in (match.get("Location") or {}).get("Path") or []]
        if path[:1] == ["Resources"] and len(path) > 1:
            resource = path[1]
        elif len(path) > 1:
            resource = f"{path[0]}/{path[1]}"
        else:
            resource = ""
        findings.append(Finding("cfn-lint", str(match["Rule"]["Id"]), resource,
                                str(match.get("Message", ""))))
    return findings


def checkov_findings(output: str) -> list[Finding]:
    """checkov's `-o json` answer (one report, or a list of reports) as findings."""
    try:
        answer = json.loads(output or "{}")
    except ValueError as exc:
        raise CheckError(f"checkov did not answer JSON: {output[:500]!r}") from exc
    reports = answer if isinstance(answer, list) else [answer]
    findings = []
    for report in reports:
        if not isinstance(report, dict):
            raise CheckError(f"checkov answered an unexpected shape: {str(report)[:200]}")
        for check in (report.get("results") or {}).get("failed_checks") or []:
            # "AWS::ApiGateway::Stage.ScoreApiProdStage": the logical id follows the type.
            resource = str(check.get("resource", "")).split(".", 1)[-1]
            findings.append(Finding("checkov", str(check["check_id"]), resource,
                                    str(check.get("check_name", ""))))
    return findings


def judge(findings: Iterable[Finding], skips: Sequence[Skip],
          tools_run: Iterable[str]) -> tuple[list[Finding], list[Skip]]:
    """(findings no skip covers, skips of the tools that ran that covered nothing)."""
    ran = set(tools_run)
    used: set[int] = set()
    unlisted = []
    for finding in findings:
        hits = [i for i, skip in enumerate(skips) if skip.covers(finding)]
        used.update(hits)
        if not hits:
            unlisted.append(finding)
    stale = [s for i, s in enumerate(skips) if s.tool in ran and i not in used]
    return unlisted, stale


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False,  # noqa: S603  # nosec B603
                              env=env, timeout=600)
    except OSError as exc:
        raise CheckError(f"could not run {command[0]}: {exc}") from exc


def run_cfn_lint(binary: str, template: Path) -> list[Finding]:
    answer = _run([binary, "-f", "json", str(template)])
    # cfn-lint's exit status is a bit mask of error (2), warning (4) and info (8) findings.
    if answer.returncode not in range(0, 16, 2):
        raise CheckError(f"cfn-lint failed ({answer.returncode}): {answer.stderr[-2000:]}")
    return cfn_lint_findings(answer.stdout)


def run_checkov(binary: str, template: Path) -> list[Finding]:
    # BC_SKIP_MAPPING and --skip-download: no call to the vendor's platform.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    answer = _run([binary, "-f", str(template), "--framework", "cloudformation", "-o", "json",
                   "--quiet", "--compact", "--skip-download"], env)
    if answer.returncode not in (0, 1):
        raise CheckError(f"checkov failed ({answer.returncode}): {answer.stderr[-2000:]}")
    return checkov_findings(answer.stdout)


def check(template: Path, *, cfn_lint: str = "", checkov: str = "",
          skips_path: Path = SKIPS) -> tuple[list[Finding], list[Skip], list[str]]:
    """(unlisted findings, stale skips, resources with inline skips) for the linters given."""
    skips = load_skips(skips_path)
    document = json.loads(template.read_text(encoding="utf-8"))
    findings: list[Finding] = []
    ran = []
    if cfn_lint:
        findings += run_cfn_lint(cfn_lint, template)
        ran.append("cfn-lint")
    if checkov:
        findings += run_checkov(checkov, template)
        ran.append("checkov")
    unlisted, stale = judge(findings, skips, ran)
    return unlisted, stale, inline_skips(document)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", type=Path, help="the transformed template (JSON)")
    parser.add_argument("--cfn-lint", default="", help="the cfn-lint executable to run")
    parser.add_argument("--checkov", default="", help="the checkov executable to run")
    parser.add_argument("--skips", type=Path, default=SKIPS)
    args = parser.parse_args(argv)
    if not (args.cfn_lint or args.checkov):
        parser.error("name at least one linter: --cfn-lint and/or --checkov")
    try:
        unlisted, stale, inline = check(args.template, cfn_lint=args.cfn_lint,
                                        checkov=args.checkov, skips_path=args.skips)
    except CheckError as exc:
        print(f"check_template: {exc}", file=sys.stderr)
        return 2
    tools = " and ".join(t for t, b in (("cfn-lint", args.cfn_lint), ("checkov", args.checkov))
                         if b)
    for finding in unlisted:
        print(f"FINDING {finding.describe()}", file=sys.stderr)
    for skip in stale:
        print(f"STALE SKIP {skip.tool} {skip.id} {list(skip.resources)}: matched no finding; "
              f"remove it from {args.skips.name}", file=sys.stderr)
    for where in inline:
        print(f"INLINE SKIP in {where}: accept findings in {args.skips.name} only",
              file=sys.stderr)
    if unlisted or stale or inline:
        print(f"{tools} on {args.template}: {len(unlisted)} finding(s) not accepted in "
              f"{args.skips.name}, {len(stale)} stale skip(s), {len(inline)} inline skip(s)",
              file=sys.stderr)
        return 1
    print(f"{tools} on {args.template}: no finding outside {args.skips.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
