"""``taskqueue exec`` as a real process: code by file name or with -e, its output and exit code."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import assert_one_clear_error, tq
from tests.conftest import ServerProcess


def test_a_script_runs_in_the_language_its_name_says(live: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("import sys\nprint('hello from', sys.version_info[0])\nsys.exit(4)\n")
    result = tq("exec", str(script), url=live.url)
    assert result.stdout == "hello from 3\n"
    assert result.returncode == 4
    assert "Failed" in result.stderr


def test_code_given_with_e_in_a_named_language(live: ServerProcess) -> None:
    result = tq("exec", "--language", "sh", "-e", "echo one; echo two >&2", url=live.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "one\n"
    assert "two" in result.stderr
    piped = tq("exec", "--language", "perl", "--input", '{"n": 2}', "-e",
               'my $in = <STDIN>; print "in: $in\\n";', url=live.url)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == 'in: {"n": 2}\n'


def test_a_language_that_cannot_be_told_or_is_not_offered_is_one_clear_error(
    live: ServerProcess, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    unknown = tq("exec", str(notes), url=live.url)
    assert unknown.returncode == 2
    assert_one_clear_error(unknown.stderr, "--language")
    cobol = tq("exec", "-l", "cobol", "-e", "x", url=live.url)
    assert cobol.returncode == 2
    assert_one_clear_error(cobol.stderr, "known languages")
    both = tq("exec", str(notes), "-e", "x", url=live.url)
    assert both.returncode == 2
    unoffered = tq("exec", "-l", "ruby", "-e", "puts 1", url=live.url)
    assert unoffered.returncode != 0
    assert_one_clear_error(unoffered.stderr, "no live worker offers ruby", "python3")


def test_limits_apply_to_code_run_with_exec(live: ServerProcess) -> None:
    code = "f = open('big', 'wb')\nfor _ in range(100): f.write(bytes(65536))"
    result = tq(
        "exec", "-l", "python3", "-e", f"import os; os.chdir(os.environ['TMPDIR'])\n{code}",
        "--limit", "file_size_bytes=64K", "-o", "json", url=live.url,
    )  # fmt: skip
    assert result.returncode != 0
    assert '"failure_reason": "file_size_limit"' in result.stdout, result.stdout + result.stderr
