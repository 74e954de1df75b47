"""Every operator command the README and docs/ show runs as written from a fresh shell after
the README's set-up (`make venv`): through `./leadscore`, never `python tools/...` (which
needs the reader to guess the interpreter). Each documented command's `--help` runs in a
clean environment, and its subcommands and flags exist. `make serve PORT=` is honoured."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tools.loadtest import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENTRY = "./leadscore"


def _code(text: str) -> list[str]:
    """Lines of code blocks and inline code spans."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return [c.strip() for c in lines + inline if c.strip()]


def documented() -> list[tuple[str, str]]:
    return [(path.name, line) for path in DOCS for line in _code(path.read_text())
            if line.startswith(f"{ENTRY} ") and not line.split()[1].startswith("<")]


def _fresh_shell(command: str, tmp: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """`command` in bash with nothing of this process's environment (no venv, no PYTHONPATH)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8", **extra}
    return subprocess.run(["/bin/bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


@functools.cache
def _help(words: tuple[str, ...], tmp: Path) -> str:
    answer = _fresh_shell(shlex.join([ENTRY, *words, "--help"]), tmp)
    assert answer.returncode == 0, (words, answer.stderr[-2000:])
    assert "usage:" in answer.stdout, (words, answer.stdout[:500])
    return answer.stdout


def test_no_doc_runs_a_tool_with_a_guessed_interpreter() -> None:
    guessed = re.compile(r"(^|\s)(\.venv/bin/)?python3? (tools|training)/\S+\.py")
    found = [(name, line) for path in DOCS for line in _code(path.read_text())
             for name in [path.name] if guessed.search(line)]
    assert found == [], "use ./leadscore <command> (README, set-up)"
    assert len(documented()) >= 25


def test_the_entry_point_names_every_documented_command() -> None:
    script = (ROOT / "leadscore").read_text()
    for _doc, line in documented():
        assert f"    {line.split()[1]}) module=" in script, line
    assert (ROOT / "leadscore").stat().st_mode & 0o111


@pytest.mark.slow
def test_every_documented_command_runs_from_a_fresh_shell(tmp_path: Path) -> None:
    """Its --help (and each subcommand's) exits 0, and every flag it uses is offered."""
    for doc, line in documented():
        command = line.split("#")[0].split(" > ")[0]  # no comment, no output redirection
        words = shlex.split(command.replace("\\", "").replace("<", "'<")
                            .replace(">", ">'"))[1:]
        chain = [words[0]]
        text = _help(tuple(chain), tmp_path)
        for n, word in enumerate(words[1:], 1):  # subcommands: {a,b,c} in the usage line
            choices = {c for group in re.findall(r"\{([\w,-]+)\}", text.split("\n\n")[0])
                       for c in group.split(",")}
            if not choices:
                break
            if word in choices:
                chain.append(word)
                # its own --help only when the line gives it flags (each start costs ~1 s)
                if not any(w.startswith("--") for w in words[n + 1:]):
                    break
                text = _help(tuple(chain), tmp_path)
            elif n == len(words) - 1 and len(chain) == 1:
                raise AssertionError(f"{doc}: {line}: no subcommand of {choices}")
        offered = "\n".join(_help(tuple(chain[:n]), tmp_path) for n in range(1, len(chain) + 1)
                             if n == 1 or any(w.startswith("--") for w in words))
        for word in words:
            if word.startswith("--"):
                assert re.search(rf"(?<![\w-]){re.escape(word.split('=')[0])}(?![\w-])",
                                 offered), (doc, line, word)


def test_an_unknown_command_is_refused_with_the_list(tmp_path: Path) -> None:
    answer = _fresh_shell(f"{ENTRY} nope", tmp_path)
    assert answer.returncode == 2
    assert "unknown command 'nope'" in answer.stderr and "modelctl" in answer.stderr


@pytest.mark.slow
def test_make_serve_port_binds_that_port(tmp_path: Path) -> None:
    dry = subprocess.run(["make", "-n", "serve", "PORT=3017"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    (serve,) = [line for line in dry.splitlines() if "-m tools.serve" in line]
    assert serve.endswith("-m tools.serve --port 3017"), serve
    # the same command line (and ./leadscore serve, which honours $PORT) really binds it
    port = free_port()
    process = subprocess.Popen(
        ["/bin/bash", "-c", f"exec {ENTRY} serve"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PORT": str(port),
             "MODEL_URI": (tmp_path / "none" / "champion.json").as_uri()})
    try:
        assert process.stdout is not None
        first = ""
        for line in process.stdout:
            if "scoring API on" in line:
                first = line
                break
        assert f"http://127.0.0.1:{port} " in first, first
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as answer:
            assert answer.status in (200, 503)
    except urllib.error.HTTPError as exc:
        assert exc.code == 503  # no model in that store: the server answers, unhealthy
    finally:
        process.terminate()
        process.wait(timeout=30)
