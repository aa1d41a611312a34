"""The README's commands are real: every `interests ...` line of its shell blocks parses with the
CLI as it is now, and every `make` target it names exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from streams.cli import parser

ROOT = Path(__file__).resolve().parents[2]


def shell_lines(markdown: str) -> list[list[str]]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value before the command
                words = words[1:]
            if words and words[-1] == "&":
                words = words[:-1]
            if words:
                out.append(words)
    return out


def parses(args: list[str]) -> bool:
    try:
        parser().parse_args(args)
    except SystemExit:
        return False
    return True


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_every_documented_command_parses(doc: str) -> None:
    lines = shell_lines((ROOT / doc).read_text())
    commands = [w[1:] for w in lines if Path(w[0]).name == "interests"]
    assert commands, doc
    bad = [" ".join(c) for c in commands if not parses(c)]
    assert bad == []
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for words in lines:
        if words[0] == "make":
            assert {w for w in words[1:] if "=" not in w} <= targets, words


def test_the_check_refuses_a_command_that_drifted() -> None:
    assert parses(["broker", "--kind", "kafka", "--port", "9092"])
    assert not parses(["broker", "--kind", "zookeeper"])
    assert shell_lines("```bash\nX=1 .venv/bin/interests tail --max 5 &  # note\n```\n") == [
        [".venv/bin/interests", "tail", "--max", "5"]]
