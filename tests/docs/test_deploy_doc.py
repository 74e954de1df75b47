"""docs/DEPLOY.md: every command a new user types exists. Each `make` target is a Makefile
target, each `tools/`/`bench/` script and its flags exist, and each `aws` command and option
exists in the service models of the installed SDK (CLI customizations from a short list)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import botocore.session
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
MAKEFILES = [ROOT / "Makefile", *ROOT.glob("layers/*/Makefile")]

# `aws` commands that the CLI adds on top of the service APIs, with their options.
CLI_CUSTOM = {
    ("s3", "cp"): {"--recursive"}, ("s3", "rb"): {"--force"}, ("s3", "ls"): {"--recursive"},
    ("s3", "rm"): {"--recursive"},
    ("logs", "tail"): {"--follow", "--log-stream-name-prefix", "--since", "--format"},
}
GLOBAL_OPTIONS = {"--query", "--output", "--region", "--profile"}
CLI_SERVICE = {"s3api": "s3", "logs": "logs"}


def commands() -> list[str]:
    """Every command line in code blocks and inline code of the page."""
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", DOC, re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", DOC, flags=re.S))
    return [c for c in lines + inline if c and not c.startswith("#")]


def _words(command: str) -> list[str]:
    return shlex.split(command.replace("<", "'<").replace(">", ">'"))


def make_targets() -> set[str]:
    text = ROOT.joinpath("Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.M))


def make_variables() -> set[str]:
    found: set[str] = set()
    for path in MAKEFILES:
        found |= set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*[?:]?=", path.read_text(), re.M))
    return found


def test_every_make_target_and_variable_exists() -> None:
    targets, variables = make_targets(), make_variables()
    seen = 0
    for command in commands():
        for match in re.finditer(r"\bmake ((?:[\w-]+(?:=\S*)?\s*)+)", command):
            for word in match.group(1).split():
                seen += 1
                if "=" in word:
                    assert word.split("=")[0] in variables, (command, word)
                elif not word.startswith("-"):
                    assert word in targets, (command, word)
    assert seen >= 5


def test_every_script_and_flag_exists() -> None:
    seen = 0
    for command in commands():
        for script in re.findall(r"((?:tools|bench|layers/\w+|tests/\w+)/[\w/]+\.(?:py|sh))",
                                 command):
            assert (ROOT / script).is_file(), script
            seen += 1
            if command.startswith("python "):
                source = (ROOT / script).read_text()
                words = _words(command)
                for word in words[words.index(script) + 1:]:
                    if word.startswith("--"):
                        assert f'"{word.split("=")[0]}"' in source, (command, word)
                    elif re.fullmatch(r"[a-z][a-z-]+", word):
                        assert f'"{word}"' in source, (command, word)  # a subcommand
    assert seen >= 3


def _aws_commands() -> list[list[str]]:
    return [_words(c) for c in commands() if c.startswith("aws ")]


def test_every_aws_command_and_option_exists_in_the_service_models() -> None:
    session = botocore.session.get_session()
    checked = 0
    for words in _aws_commands():
        if words[1:] == ["configure"]:  # the CLI's own setup command
            continue
        service, command = words[1], words[2]
        options = {w.split("=")[0] for w in words[3:] if w.startswith("--")} - GLOBAL_OPTIONS
        if (service, command) in CLI_CUSTOM:
            assert options <= CLI_CUSTOM[(service, command)], (words, options)
            checked += 1
            continue
        model = session.get_service_model(CLI_SERVICE.get(service, service))
        if command == "wait":
            waiter = words[3].replace("-", "")
            names = session.get_waiter_model(model.service_name).waiter_names
            assert any(n.lower() == waiter for n in names), words
            operation_name = session.get_waiter_model(model.service_name).get_waiter(
                next(n for n in names if n.lower() == waiter)).operation
            options = {w for w in words[4:] if w.startswith("--")} - GLOBAL_OPTIONS
        else:
            wanted = command.replace("-", "")
            matches = [op for op in model.operation_names if op.lower() == wanted]
            assert matches, f"aws {service} {command}: no such operation"
            operation_name = matches[0]
        members = {m.lower() for m in model.operation_model(operation_name).input_shape.members}
        for option in options:
            assert option[2:].replace("-", "") in members, (words, option)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("path", sorted(set(re.findall(r"\((\w+\.md)\)", DOC))))
def test_linked_pages_exist(path: str) -> None:
    assert (ROOT / "docs" / path).is_file()
