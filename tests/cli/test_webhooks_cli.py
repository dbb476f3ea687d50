"""``taskqueue webhooks ...`` against a real server and a real receiver: what it prints, its
exit codes, and what it leaves stored.

The module's server sends to 127.0.0.1 (``--webhook-allow-private``). Subscriptions here want
only ``task.failed`` unless a test says otherwise, and no task runs, so the server's dispatcher
sends them nothing: every delivery is one a command asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import (
    MISSING,
    as_json,
    assert_one_clear_error,
    cli,
    get,
    header,
    make_project,
    names_in,
    table_rows,
    tq,
)
from tests.conftest import ServerProcess, free_port
from tests.receivers import Receiver, start_receiver

SECRET_LINE = re.compile(r"^secret: (whsec_\S+) \(shown once; store it now\)$", re.MULTILINE)
QUIET = ("--events", "task.failed")


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("webhooks-cli")
    server = ServerProcess(
        db=root / "tq.db",
        port=free_port(),
        log=root / "server.log",
        args=["--workers", "0", "--webhook-allow-private"],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hapi(hooks: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hooks.url, timeout=30) as client:
        yield client


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[[int, str], Receiver]]:
    started: list[Receiver] = []

    def start(port: int, secret: str) -> Receiver:
        receiver = start_receiver(tmp_path / "receivers", port, "--secret", secret)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def made(hooks: ServerProcess, url: str, *args: str) -> dict[str, Any]:
    result = cli(hooks.url, "webhooks", "create", url, *args, "-o", "json")
    assert result.exit_code == 0, result.output
    hook: dict[str, Any] = as_json(result)
    return hook


def stored(hapi: httpx.Client) -> list[dict[str, Any]]:
    return list(get(hapi, "/api/webhooks", {"limit": 1000})["webhooks"])


def settled(hook: dict[str, Any]) -> dict[str, Any]:
    """A subscription without its ``position``, which the dispatcher moves on at any time
    (past the events a subscription does not want), and without its secret."""
    return {k: v for k, v in hook.items() if k not in ("position", "secret")}


def settled_all(hooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [settled(h) for h in hooks]


# --------------------------------------------------------------------------- create


def test_create_prints_the_secret_once_and_stores_the_subscription(
    hooks: ServerProcess, hapi: httpx.Client
) -> None:
    project = make_project(hapi, "wh-create")
    result = cli(
        hooks.url,
        "webhooks",
        "create",
        "https://hooks.example.com/tq",
        "--events",
        "task.failed",
        "--events",
        "task.completed,task.cancelled",
        "--project",
        "wh-create",
        "--description",
        "pager",
    )
    assert result.exit_code == 0, result.output
    [secret] = SECRET_LINE.findall(result.stdout)
    assert secret.startswith("whsec_")
    assert "never shows this secret again" in result.stderr
    [hook] = [h for h in stored(hapi) if h["url"] == "https://hooks.example.com/tq"]
    assert hook["project_id"] == project["id"]
    assert hook["event_types"] == ["task.cancelled", "task.completed", "task.failed"]
    assert hook["description"] == "pager"
    assert hook["enabled"] is True
    assert "secret" not in hook
    assert hook["id"] in result.stdout

    for shown in (
        cli(hooks.url, "webhooks", "get", hook["id"]),
        cli(hooks.url, "webhooks", "get", hook["id"], "-o", "json"),
        cli(hooks.url, "webhooks", "list"),
        cli(hooks.url, "webhooks", "list", "-o", "json"),
    ):
        assert shown.exit_code == 0, shown.output
        assert secret not in shown.output
        assert "whsec_" not in shown.output


def test_create_as_json_is_the_api_object_with_its_secret(
    hooks: ServerProcess, hapi: httpx.Client
) -> None:
    hook = made(hooks, "https://hooks.example.com/json", *QUIET, "--disabled")
    assert hook["secret"].startswith("whsec_")
    assert hook["enabled"] is False
    assert hook["project_id"] is None
    assert settled(hook) == settled(get(hapi, f"/api/webhooks/{hook['id']}"))


def test_create_with_no_events_subscribes_to_every_event(hooks: ServerProcess) -> None:
    hook = made(hooks, "https://hooks.example.com/all", "--disabled")
    assert hook["event_types"] == ["*"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ftp://hooks.example.com/"], ["URL", "http:// or https://"]),
        (["https://user:pw@hooks.example.com/"], ["URL", "credentials"]),
        (["https://hooks.example.com/", "--events", "task.bogus"], ["--events", "task.bogus"]),
        (["https://hooks.example.com/", "--events", "task.failed,nope"], ["--events", "nope"]),
        (["https://hooks.example.com/", "--project", "wh-no-such-project"], ["wh-no-such"]),
    ],
)
def test_bad_input_to_create_is_one_clear_error_and_stores_nothing(
    hooks: ServerProcess, hapi: httpx.Client, args: list[str], expected: list[str]
) -> None:
    before = len(stored(hapi))
    result = cli(hooks.url, "webhooks", "create", *args)
    assert result.exit_code in (2, 3), result.output
    assert_one_clear_error(result.stderr, *expected)
    assert "whsec_" not in result.output
    assert len(stored(hapi)) == before


# --------------------------------------------------------------------------- list, get


def test_list_shows_short_ids_and_as_json_is_the_apis_list(
    hooks: ServerProcess, hapi: httpx.Client
) -> None:
    hook = made(hooks, "https://hooks.example.com/list", *QUIET)
    table = cli(hooks.url, "webhooks", "list")
    assert table.exit_code == 0, table.output
    assert header(table.stdout)[:5] == ["ID", "URL", "EVENTS", "PROJECT", "STATE"]
    listed = stored(hapi)
    assert names_in(table.stdout, "ID") == [h["id"][-12:] for h in listed]
    row = table_rows(table.stdout)[names_in(table.stdout, "ID").index(hook["id"][-12:])]
    assert "https://hooks.example.com/list" in row
    assert "task.failed" in row
    assert "enabled" in row
    as_list = cli(hooks.url, "webhooks", "list", "-o", "json")
    assert as_list.exit_code == 0, as_list.output
    assert settled_all(as_json(as_list)) == settled_all(listed)
    page = cli(hooks.url, "webhooks", "list", "--limit", "1", "--offset", "1", "-o", "json")
    expected = get(hapi, "/api/webhooks", {"limit": 1, "offset": 1})["webhooks"]
    assert settled_all(as_json(page)) == settled_all(expected)


def test_get_by_whole_id_short_form_and_part(hooks: ServerProcess, hapi: httpx.Client) -> None:
    hook = made(hooks, "https://hooks.example.com/get", *QUIET, "--description", "the one")
    for given in (hook["id"], hook["id"][-12:], hook["id"][-6:]):
        result = cli(hooks.url, "webhooks", "get", given)
        assert result.exit_code == 0, result.output
        assert hook["id"] in result.stdout
        assert "https://hooks.example.com/get" in result.stdout
        assert "the one" in result.stdout
    as_json_ = cli(hooks.url, "webhooks", "get", hook["id"][-12:], "-o", "json")
    assert settled(as_json(as_json_)) == settled(get(hapi, f"/api/webhooks/{hook['id']}"))


@pytest.mark.parametrize(
    ("given", "code", "expected"),
    [
        (MISSING, 3, ["not found"]),
        ("ffffeeeedddd", 3, ["no webhook id", "ffffeeeedddd"]),
        ("zz", 2, ["not a webhook id"]),
        ("not-an-id!", 2, ["not a webhook id"]),
    ],
)
def test_an_unknown_or_malformed_id_is_one_clear_error(
    hooks: ServerProcess, given: str, code: int, expected: list[str]
) -> None:
    for command in (["get"], ["test"], ["deliveries"], ["delete", "--yes"], ["rotate-secret"]):
        result = cli(hooks.url, "webhooks", *command, given)
        assert result.exit_code == code, (command, result.output)
        assert_one_clear_error(result.stderr, *expected)
        if code == 3:
            assert "hint: see the subscriptions with `taskqueue webhooks list`" in result.stderr


def test_a_part_that_several_ids_share_is_a_usage_error(hooks: ServerProcess) -> None:
    first = made(hooks, "https://hooks.example.com/a", *QUIET)
    made(hooks, "https://hooks.example.com/b", *QUIET)
    start = first["id"][:4]  # UUIDv7: made in the same minute, the same start
    result = cli(hooks.url, "webhooks", "get", start)
    assert result.exit_code == 2, result.output
    assert_one_clear_error(result.stderr, "matches", "give more of the id")


# --------------------------------------------------------------------------- update, delete


def test_update_changes_only_what_is_given(hooks: ServerProcess, hapi: httpx.Client) -> None:
    hook = made(hooks, "https://hooks.example.com/up", *QUIET, "--description", "before")
    result = cli(hooks.url, "webhooks", "update", hook["id"][-12:], "--disable")
    assert result.exit_code == 0, result.output
    assert "disabled" in result.stdout
    now = get(hapi, f"/api/webhooks/{hook['id']}")
    assert (now["enabled"], now["description"], now["url"]) == (False, "before", hook["url"])

    result = cli(
        hooks.url,
        "webhooks",
        "update",
        hook["id"],
        "--url",
        "https://other.example.com/in",
        "--events",
        "task.cancelled,task.*",
        "--enable",
        "--description",
        "",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    now = get(hapi, f"/api/webhooks/{hook['id']}")
    assert settled(as_json(result)) == settled(now)
    assert now["url"] == "https://other.example.com/in"
    assert sorted(now["event_types"]) == ["task.*", "task.cancelled"]
    assert now["enabled"] is True
    assert now["description"] is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["nothing to change"]),
        (["--url", "mailto:ops@example.com"], ["--url", "http:// or https://"]),
        (["--events", "everything"], ["--events", "everything"]),
    ],
)
def test_bad_updates_are_one_clear_error_and_change_nothing(
    hooks: ServerProcess, hapi: httpx.Client, args: list[str], expected: list[str]
) -> None:
    hook = made(hooks, "https://hooks.example.com/bad-up", *QUIET)
    before = get(hapi, f"/api/webhooks/{hook['id']}")
    result = cli(hooks.url, "webhooks", "update", hook["id"], *args)
    assert result.exit_code == 2, result.output
    assert_one_clear_error(result.stderr, *expected)
    assert settled(get(hapi, f"/api/webhooks/{hook['id']}")) == settled(before)


def test_delete_asks_unless_yes(hooks: ServerProcess, hapi: httpx.Client) -> None:
    hook = made(hooks, "https://hooks.example.com/del", *QUIET)
    unasked = cli(hooks.url, "webhooks", "delete", hook["id"])
    assert unasked.exit_code == 2, unasked.output
    assert "pass --yes" in unasked.stderr
    assert hapi.get(f"/api/webhooks/{hook['id']}").status_code == 200

    deleted = cli(hooks.url, "webhooks", "delete", hook["id"][-12:], "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout.strip() == f"deleted {hook['id']}"
    assert hapi.get(f"/api/webhooks/{hook['id']}").status_code == 404
    again = cli(hooks.url, "webhooks", "delete", hook["id"], "--yes")
    assert again.exit_code == 3, again.output
    assert_one_clear_error(again.stderr, "not found")


# --------------------------------------------------------------------------- rotate-secret


def test_rotate_secret_prints_a_new_secret_and_keeps_the_old_one_for_the_grace(
    hooks: ServerProcess, hapi: httpx.Client
) -> None:
    hook = made(hooks, "https://hooks.example.com/rot", *QUIET)
    result = cli(hooks.url, "webhooks", "rotate-secret", hook["id"][-12:], "--grace", "1h")
    assert result.exit_code == 0, result.output
    [secret] = SECRET_LINE.findall(result.stdout)
    assert secret != hook["secret"]
    now = get(hapi, f"/api/webhooks/{hook['id']}")
    until = datetime.fromisoformat(now["previous_secret_until"])
    updated = datetime.fromisoformat(now["updated_at"])
    assert round((until - updated).total_seconds()) == 3600

    as_json_ = cli(hooks.url, "webhooks", "rotate-secret", hook["id"], "-o", "json")
    assert as_json_.exit_code == 0, as_json_.output
    assert as_json(as_json_)["secret"] not in (hook["secret"], secret)


@pytest.mark.parametrize(
    ("grace", "expected"), [("soon", "not a duration"), ("8d", "more than 7 days")]
)
def test_a_bad_grace_is_one_clear_error(hooks: ServerProcess, grace: str, expected: str) -> None:
    hook = made(hooks, "https://hooks.example.com/grace", *QUIET)
    result = cli(hooks.url, "webhooks", "rotate-secret", hook["id"], "--grace", grace)
    assert result.exit_code == 2, result.output
    assert_one_clear_error(result.stderr, "--grace", expected)
    assert "whsec_" not in result.output


# --------------------------------------------------------------------------- sending


def test_test_redeliver_and_deliveries_against_a_live_receiver(
    hooks: ServerProcess, hapi: httpx.Client, receivers: Callable[[int, str], Receiver]
) -> None:
    port = free_port()
    hook = made(hooks, f"http://127.0.0.1:{port}/", *QUIET)
    receiver = receivers(port, hook["secret"])

    sent = cli(hooks.url, "webhooks", "test", hook["id"][-12:])
    assert sent.exit_code == 0, sent.output
    assert names_in(sent.stdout, "STATUS") == ["delivered"]
    assert names_in(sent.stdout, "CODE") == ["204"]
    [event] = receiver.events("*")
    assert event["type"] == "webhook.test"
    assert names_in(sent.stdout, "EVENT") == [str(event["id"])]

    again = cli(hooks.url, "webhooks", "redeliver", hook["id"], str(event["id"]), "-o", "json")
    assert again.exit_code == 0, again.output
    redelivered = as_json(again)
    assert (redelivered["status"], redelivered["manual"]) == ("delivered", True)
    assert redelivered["response_code"] == 200  # the same webhook-id: acknowledged, not rerun

    table = cli(hooks.url, "webhooks", "deliveries", hook["id"])
    assert table.exit_code == 0, table.output
    assert header(table.stdout) == [
        "TIME", "EVENT", "TYPE", "ATTEMPT", "STATUS", "CODE", "DURATION", "ERROR"
    ]  # fmt: skip
    assert names_in(table.stdout, "EVENT") == [str(event["id"])] * 2
    assert names_in(table.stdout, "TYPE") == ["webhook.test"] * 2
    assert names_in(table.stdout, "ATTEMPT") == ["1 (manual)"] * 2
    assert names_in(table.stdout, "STATUS") == ["delivered"] * 2
    assert names_in(table.stdout, "CODE") == ["200", "204"]  # newest first
    assert all(d.endswith("ms") for d in names_in(table.stdout, "DURATION"))
    assert names_in(table.stdout, "ERROR") == ["-", "-"]

    listed = cli(hooks.url, "webhooks", "deliveries", hook["id"], "-o", "json")
    assert as_json(listed) == get(hapi, f"/api/webhooks/{hook['id']}/deliveries")["deliveries"]
    assert as_json(listed)[0]["id"] == redelivered["id"]
    one = cli(hooks.url, "webhooks", "deliveries", hook["id"], "--limit", "1")
    assert "showing 1-1 of 2" in one.stderr


def test_a_failed_send_exits_1_and_says_why(hooks: ServerProcess) -> None:
    hook = made(hooks, f"http://127.0.0.1:{free_port()}/", *QUIET)  # nothing listens there
    result = cli(hooks.url, "webhooks", "test", hook["id"])
    assert result.exit_code == 1, result.output
    assert names_in(result.stdout, "STATUS") == ["failed"]
    assert_one_clear_error(result.stderr, "the delivery failed")
    deliveries = cli(hooks.url, "webhooks", "deliveries", hook["id"], "-o", "json")
    [failed] = as_json(deliveries)
    assert failed["status"] == "failed"
    assert failed["error"]


def test_redeliver_refusals(hooks: ServerProcess) -> None:
    hook = made(hooks, "https://hooks.example.com/redo", *QUIET)
    missing = cli(hooks.url, "webhooks", "redeliver", hook["id"], str(2**62))
    assert missing.exit_code == 5, missing.output
    assert_one_clear_error(missing.stderr, "no event")
    for bad in ("0", "one"):
        result = cli(hooks.url, "webhooks", "redeliver", hook["id"], bad)
        assert result.exit_code == 2, result.output
        assert_one_clear_error(result.stderr, "EVENT_ID")


def test_the_real_process_prints_the_secret_on_stdout(hooks: ServerProcess) -> None:
    result = tq("webhooks", "create", "https://hooks.example.com/proc", *QUIET, url=hooks.url)
    assert result.returncode == 0, result.stderr
    assert len(SECRET_LINE.findall(result.stdout)) == 1
    assert "whsec_" not in result.stderr
    unreachable = tq("webhooks", "list", url=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 4, unreachable.stderr
    assert_one_clear_error(unreachable.stderr, "cannot reach")
