"""Every help page: plain words (no markup) and examples that the command line accepts."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskqueue.cli import main
from taskqueue.cli._examples import EXAMPLES, commands

ALL = dict(commands(main))


def test_every_command_has_examples_and_no_entry_is_stale() -> None:
    assert sorted(EXAMPLES) == sorted(ALL)


@pytest.mark.parametrize("path", sorted(ALL), ids=lambda p: p or "taskqueue")
def test_help_ends_with_examples_and_shows_no_markup(path: str) -> None:
    result = CliRunner().invoke(main, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    tail = result.output.rstrip().split("Examples:\n", 1)
    assert len(tail) == 2, result.output
    shown = [line.strip() for line in tail[1].splitlines()]
    assert shown == list(EXAMPLES[path])
    assert "``" not in result.output
    assert "\b" not in result.output


@pytest.mark.parametrize(
    "line", sorted({line for lines in EXAMPLES.values() for line in lines}), ids=str
)
def test_each_example_parses(line: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each example names real commands, options and values: parsed in full, but not run."""
    ran: list[str] = []
    for path, command in ALL.items():
        monkeypatch.setattr(command, "callback", lambda *a, _p=path, **k: ran.append(_p))
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    words = list(lexer)
    words = words[: words.index("|")] if "|" in words else words
    assert words[0] == "taskqueue"
    monkeypatch.chdir(tmp_path)
    for word in words:
        if word.endswith((".yaml", ".jsonl")):  # files the examples read must exist
            Path(word).write_text("[]")
    result = CliRunner().invoke(main, words[1:])
    assert result.exit_code == 0, result.output
    assert ran
    assert ran[-1] in EXAMPLES
