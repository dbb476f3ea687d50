"""``taskqueue functions ...``, ``execute`` and ``batch-execute`` against a real server: what they
print, their exit codes, and what they leave stored.

Definitions run ``python3 -c`` bodies that read ``$TASKQUEUE_INPUT`` and write
``$TASKQUEUE_OUTPUT``, once (``--retry-attempts 0``), so a failing item fails at once.
"""

from __future__ import annotations

import json
import shlex
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import (
    ANSI,
    MISSING,
    as_json,
    assert_one_clear_error,
    cli,
    get,
    header,
    make_task,
    names_in,
    on_a_pty,
    sub_env,
    table_rows,
    task_count,
    tq,
)
from tests.conftest import ServerProcess

#: Upper-cases ``text``; exits 4 (no output) when ``text`` is "fail".
UPPER_PY = (
    "import json, os, sys\n"
    "d = json.load(open(os.environ['TASKQUEUE_INPUT']))\n"
    "if d['text'] == 'fail':\n"
    "    print('asked to fail', file=sys.stderr); sys.exit(4)\n"
    "json.dump({'upper': d['text'].upper(), 'n': len(d['text'])},"
    " open(os.environ['TASKQUEUE_OUTPUT'], 'w'))\n"
)
UPPER = f"python3 -c {shlex.quote(UPPER_PY)}"
REVERSE = "python3 -c " + shlex.quote(UPPER_PY.replace(".upper()", "[::-1]"))
SLOW = f"sleep 2; {UPPER}"
IN = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
OUT = {"type": "object", "properties": {"upper": {"type": "string"}}, "required": ["upper"]}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def define(live: ServerProcess, command: str = UPPER, *args: str) -> dict[str, Any]:
    """A definition made with ``functions create --json``; the API's JSON of it."""
    result = cli(
        live.url, "functions", "create", unique("fn"), "--command", command,
        "--input-schema", json.dumps(IN), "--output-schema", json.dumps(OUT),
        "--retry-attempts", "0", *args, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    made: dict[str, Any] = as_json(result)
    return made


def detail(text: str) -> dict[str, str]:
    """The rows of a field / value table (``functions get``), by field."""
    fields = ("input schema", "output schema", "id", "name", "type", "version", "description",
              "body", "timeout", "retries", "created", "updated")  # fmt: skip
    rows: dict[str, str] = {}
    for line in text.splitlines():
        key = next((f for f in fields if line.startswith(f + " ")), None)
        if key is not None and key not in rows:
            rows[key] = line[len(key) :].strip()
    return rows


def functions_total(api: httpx.Client) -> int:
    return int(get(api, "/api/tasks", {"task_type": "Function", "limit": 1})["total"])


# ------------------------------------------------------------------------------ functions


def test_create_list_get_and_versions(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    schema_file = tmp_path / "out.json"
    schema_file.write_text(json.dumps(OUT))
    name = unique("upper")
    made = cli(
        live.url, "functions", "create", name, "--command", UPPER, "--description", "Upper text",
        "--input-schema", json.dumps(IN), "--output-schema", f"@{schema_file}",
        "--retry-attempts", "0",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    rows = detail(made.stdout)
    assert (rows["type"], rows["version"], rows["description"]) == ("Function", "1", "Upper text")
    stored = get(api, "/api/tasks", {"task_type": "Function", "limit": 1000})["tasks"]
    task = next(t for t in stored if t["name"] == name)
    assert (task["input_schema"], task["output_schema"], task["version"]) == (IN, OUT, 1)
    make_task(api, unique("simple"))  # not a definition: never listed

    listed = cli(live.url, "functions", "list")
    assert listed.exit_code == 0, listed.output
    assert header(listed.stdout) == ["ID", "NAME", "VERSION", "DESCRIPTION"]
    assert name in names_in(listed.stdout)
    row = next(r for r in table_rows(listed.stdout) if r[1] == name)
    assert (row[0], row[2], row[3]) == (task["id"][-12:], "1", "Upper text")
    as_list = as_json(cli(live.url, "functions", "list", "--json"))
    assert {t["task_type"] for t in as_list} == {"Function"}
    assert task["id"] in [t["id"] for t in as_list]

    changed = api.put(f"/api/tasks/{task['id']}", json={"command": REVERSE})
    assert changed.status_code == 200, changed.text
    versions = cli(live.url, "functions", "versions", task["id"])
    assert versions.exit_code == 0, versions.output
    assert [r[0] for r in table_rows(versions.stdout)] == ["1", "2"]
    assert table_rows(versions.stdout)[0][3:] == ["{text: string}", "{upper: string}"]
    as_versions = as_json(cli(live.url, "functions", "versions", task["id"][-12:], "--json"))
    assert [(v["version"], v["command"]) for v in as_versions] == [(1, UPPER), (2, REVERSE)]

    first = as_json(cli(live.url, "functions", "get", task["id"], "--version", "1", "--json"))
    assert (first["version"], first["command"]) == (1, UPPER)
    now = cli(live.url, "functions", "get", task["id"])
    assert now.exit_code == 0, now.output
    shown = detail(now.stdout)
    assert (shown["id"], shown["version"]) == (task["id"], "2")
    assert shown["body"].startswith("python3 -c")
    assert "[::-1]" in now.stdout  # the body of version 2
    assert shown["input schema"] == json.dumps(IN, sort_keys=True)


def test_create_takes_code_from_a_file_or_inline(live: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "shout.py"
    script.write_text(UPPER_PY)
    from_file = as_json(cli(live.url, "functions", "create", unique("file"), "--file",
                            str(script), "--no-validate-output", "--json"))  # fmt: skip
    assert (from_file["language"], from_file["code"]) == ("python3", UPPER_PY)
    assert from_file["task_type"] == "Function"
    inline = cli(live.url, "functions", "create", unique("inline"), "--language", "python",
                 "--code", UPPER_PY, "--retry-attempts", "0", "--json")  # fmt: skip
    assert inline.exit_code == 0, inline.output
    ran = cli(live.url, "execute", as_json(inline)["id"], "--input", '{"text": "code"}')
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout) == {"upper": "CODE", "n": 4}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "--command"),
        (("--command", "true", "--code", "x"), "--command"),
        (("--command", "true", "--language", "python3"), "--language"),
        (("--command", "true", "--input-schema", "{not json"), "--input-schema"),
        (("--command", "true", "--output-schema", "[1, 2]"), "JSON object"),
        (("--command", "true", "--input-schema", "@missing.json"), "cannot read missing.json"),
        (("--code", "print(1)"), "--language"),
        (("--file", "notes.txt"), "cannot read notes.txt"),
    ],
)
def test_bad_create_input_is_one_clear_usage_error_and_makes_nothing(
    live: ServerProcess, api: httpx.Client, args: tuple[str, ...], expected: str
) -> None:
    before = functions_total(api)
    result = cli(live.url, "functions", "create", unique("bad"), *args)
    assert result.exit_code == 2, result.output
    assert_one_clear_error(result.stderr, expected)
    assert functions_total(api) == before


# ------------------------------------------------------------------------------ execute


def test_execute_prints_the_output(live: ServerProcess, tmp_path: Path) -> None:
    task = define(live)
    result = cli(live.url, "execute", task["id"], "--input", '{"text": "hello"}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"upper": "HELLO", "n": 5}
    given = tmp_path / "input.json"
    given.write_text('{"text": "file"}')
    from_file = cli(live.url, "execute", task["id"][-12:], "--input", f"@{given}")
    assert json.loads(from_file.stdout) == {"upper": "FILE", "n": 4}
    piped = cli(live.url, "execute", task["id"], "--input", "-", input='{"text": "pipe"}\n')
    assert json.loads(piped.stdout) == {"upper": "PIPE", "n": 4}
    whole = as_json(cli(live.url, "execute", task["id"], "--input", '{"text": "x"}', "--json"))
    assert (whole["status"], whole["output"], whole["version"]) == (
        "Completed",
        {"upper": "X", "n": 1},
        1,
    )
    assert whole["task_id"] == task["id"]


def test_a_failed_execution_exits_1_with_its_error(live: ServerProcess) -> None:
    task = define(live)
    result = cli(live.url, "execute", task["id"], "--input", '{"text": "fail"}')
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    line = assert_one_clear_error(result.stderr, "Failed")
    failed = as_json(cli(live.url, "execute", task["id"], "--input", '{"text": "fail"}', "--json"))
    assert failed["status"] == "Failed"
    assert failed["failure_reason"] in line
    if failed["error"]:
        assert failed["error"].splitlines()[0] in line


def test_an_input_against_the_schema_prints_its_path(
    live: ServerProcess, api: httpx.Client
) -> None:
    task = define(live)
    before = task_count(api)
    result = cli(live.url, "execute", task["id"], "--input", '{"text": 5}')
    assert result.exit_code == 5, result.output
    line = assert_one_clear_error(result.stderr, "string")
    assert "$.text" in line or "input.text" in line  # the field's JSON path
    not_json = cli(live.url, "execute", task["id"], "--input", "{text")
    assert not_json.exit_code == 2
    assert_one_clear_error(not_json.stderr, "--input", "not valid JSON")
    missing = cli(live.url, "execute", task["id"], "--input", "@nowhere.json")
    assert missing.exit_code == 2
    assert_one_clear_error(missing.stderr, "cannot read nowhere.json")
    assert task_count(api) == before  # nothing ran


def test_execute_refuses_what_is_not_a_definition(live: ServerProcess, api: httpx.Client) -> None:
    simple = make_task(api, unique("plain"))
    refused = cli(live.url, "execute", simple["id"], "--input", "{}")
    assert refused.exit_code == 5, refused.output
    assert "Traceback" not in refused.stderr
    assert cli(live.url, "execute", MISSING, "--input", "{}").exit_code == 3


def test_a_short_timeout_reports_the_execution_still_running(live: ServerProcess) -> None:
    task = define(live, SLOW)
    result = cli(live.url, "execute", task["id"], "--input", '{"text": "s"}', "--timeout-ms", "0")
    assert result.exit_code == 1, result.output
    assert_one_clear_error(result.stderr, "still")
    waited = cli(live.url, "execute", task["id"], "--input", '{"text": "s"}')
    assert json.loads(waited.stdout) == {"upper": "S", "n": 1}


# ------------------------------------------------------------------------------ batch-execute


def test_batch_execute_summarises_and_exits_1_on_a_failed_item(
    live: ServerProcess, tmp_path: Path
) -> None:
    task = define(live)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"text": "a"}\n\n{"text": "fail"}\n{"text": "ccc"}\n')
    result = cli(live.url, "batch-execute", task["id"], str(inputs), "--max-concurrency", "2")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "total 3, succeeded 2, failed 1, skipped 0"
    assert lines[1].startswith("  item 1 (line 2) Failed")
    assert len(lines) == 2

    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "x"}\n{"text": "yy"}\n')
    ok = cli(live.url, "batch-execute", task["id"], str(good), "--json")
    assert ok.exit_code == 0, ok.output
    batch = as_json(ok)
    assert (batch["status"], batch["success_count"], batch["max_concurrency"]) == (
        "Completed",
        2,
        10,
    )
    assert [(r["id"], r["output"]) for r in batch["results"]] == [
        ("0", {"upper": "X", "n": 1}),
        ("1", {"upper": "YY", "n": 2}),
    ]
    piped = cli(live.url, "batch-execute", task["id"], "-", input='{"text": "in"}\n')
    assert piped.exit_code == 0, piped.output
    assert piped.stdout.splitlines() == ["total 1, succeeded 1, failed 0, skipped 0"]


def test_stop_on_first_error_skips_the_rest(live: ServerProcess, tmp_path: Path) -> None:
    task = define(live)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("fail", "b", "c")))
    result = cli(live.url, "batch-execute", task["id"], str(inputs), "--max-concurrency", "1",
                 "--stop-on-first-error", "--json")  # fmt: skip
    assert result.exit_code == 1, result.output
    batch = as_json(result)
    assert batch["stop_on_first_error"] is True
    assert batch["failure_count"] == 1
    assert batch["skipped_count"] >= 1
    assert batch["results"][-1]["skipped"] is True


def test_a_malformed_line_is_a_usage_error_naming_it_and_sends_nothing(
    live: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    task = define(live)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"text": "a"}\n{"text": oops}\n{"text": "c"}\n')
    before = task_count(api)
    result = cli(live.url, "batch-execute", task["id"], str(inputs))
    assert result.exit_code == 2, result.output
    assert_one_clear_error(result.stderr, "line 2", "not JSON")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    none = cli(live.url, "batch-execute", task["id"], str(empty))
    assert none.exit_code == 2
    assert_one_clear_error(none.stderr, "no inputs")
    absent = cli(live.url, "batch-execute", task["id"], str(tmp_path / "absent.jsonl"))
    assert absent.exit_code == 2
    assert_one_clear_error(absent.stderr, "cannot read")
    assert task_count(api) == before


def test_the_real_process_prints_no_progress_bar_off_a_terminal(
    live: ServerProcess, tmp_path: Path
) -> None:
    task = define(live, SLOW)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"text": "a"}\n{"text": "b"}\n')
    result = tq("batch-execute", task["id"], str(inputs), url=live.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "total 2, succeeded 2, failed 0, skipped 0\n"
    assert result.stderr == ""
    assert not ANSI.search(result.stdout)
    failed = tq("execute", task["id"], "--input", '{"text": "fail"}', url=live.url)
    assert failed.returncode == 1
    assert_one_clear_error(failed.stderr, "Failed")


def stderr_on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal: its exit code, stdout, and what it showed."""
    return on_a_pty(args, sub_env({"TERM": "xterm-256color"}), stream="stderr")


def test_a_terminal_sees_a_progress_bar_unless_json_is_asked(
    live: ServerProcess, tmp_path: Path
) -> None:
    task = define(live, SLOW)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"text": "a"}\n{"text": "b"}\n')
    code, out, shown = stderr_on_a_terminal(
        ["--base-url", live.url, "batch-execute", task["id"], str(inputs), "--max-concurrency", "1"]
    )
    assert code == 0, shown
    assert out == "total 2, succeeded 2, failed 0, skipped 0\n"
    assert "executing" in shown
    assert "0/2" in shown or "1/2" in shown
    code, out, shown = stderr_on_a_terminal(
        ["--base-url", live.url, "batch-execute", task["id"], str(inputs), "--json"]
    )
    assert code == 0, shown
    assert json.loads(out)["success_count"] == 2
    assert "executing" not in shown
