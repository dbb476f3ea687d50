"""Database names in banners and errors: no form of credential is ever printed.

Every case names the secrets it holds; the description must show none of them (and should
still show what helps: the scheme, user, host and database), and :func:`secrets_of` must list
what a driver's error could echo, so it can be scrubbed.
"""

from __future__ import annotations

import re

import pytest

from taskqueue.security import redact
from taskqueue.store import check_database, describe_database, secrets_of
from taskqueue.store.urls import database_problem

CASES = [
    # (database, secrets it holds, what the description shows)
    (
        "postgresql://tq:S3cret@PW@host/db?password=Other",
        ["S3cret", "PW", "Other"],
        "postgresql://tq:***@host/db?password=***",
    ),
    ("postgresql://tq:hunter2@db.example:5432/tq", ["hunter2"], "postgresql://tq:***@db.example"),
    ("postgresql://tq:p%40ss%2Fw0rd@h/db", ["p%40ss%2Fw0rd", "p@ss/w0rd"], "tq:***@h/db"),
    ("postgresql://tq:pa/ss@host/db", ["pa/ss"], "postgresql://tq:***@host/db"),
    ("postgresql://tq:pa?ss@host/db?sslmode=require", ["pa?ss"], "@host/db?sslmode=require"),
    ("postgresql://tq:pa#ss@host/db", ["pa#ss"], "postgresql://tq:***@host/db"),
    ("postgresql://tq:@host/db", [], "postgresql://tq:***@host/db"),
    (
        "postgresql://tq@host/db?sslmode=require&password=Other&sslpassword=Third",
        ["Other", "Third"],
        "postgresql://tq@host/db?sslmode=require&password=***&sslpassword=***",
    ),
    ("postgresql://tq@host/db?PassWord=Other", ["Other"], "?PassWord=***"),
    ("postgresql://tq@host/db?password=abc&def", ["abc&def"], "password=***&***"),
    ("postgresql+psycopg://u:s3cr3t@h/d", ["s3cr3t"], "postgresql+psycopg://u:***@h/d"),
    ("host=db.example password=hunter2 dbname=tq", ["hunter2"], "host=db.example password=***"),
    ("host=db password = 'hunt er2' user=tq", ["hunt er2"], "host=db password=*** user=tq"),
    ("password=hunter2", ["hunter2"], "password=***"),
    ("host=db sslpassword=hunter2 port=5432", ["hunter2"], "sslpassword=*** port=5432"),
]


@pytest.mark.parametrize(("db", "secrets", "shown"), CASES)
def test_no_credential_is_described(db: str, secrets: list[str], shown: str) -> None:
    described = describe_database(db)
    for secret in secrets:
        assert secret not in described, described
    assert shown in described


@pytest.mark.parametrize(("db", "secrets", "shown"), CASES)
def test_every_secret_is_listed_for_scrubbing(db: str, secrets: list[str], shown: str) -> None:
    del shown
    listed = secrets_of(db)
    for secret in secrets:
        assert secret not in redact(f"the driver said {secret}.", listed), listed
    # A driver echoing the host it could not resolve, or the whole string, shows none of them.
    for echo in (f"could not translate host name {db.split('@')[-1]!r}", f"bad: {db}"):
        scrubbed = redact(echo, listed)
        for secret in secrets:
            assert secret not in scrubbed, scrubbed


def test_what_holds_no_secret_is_shown_as_given() -> None:
    for db in (
        "taskqueue.db",
        "/var/lib/taskqueue/tq.db",
        "sqlite:///tq.db",
        "sqlite:////abs/tq.db?mode=rwc",
        "postgresql://tq@db.example:5432/tq?sslmode=verify-full&application_name=tq",
        "postgresql:///tq",
    ):
        assert describe_database(db) == db
        assert secrets_of(db) == []


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        ("host=db.example password=hunter2 dbname=tq", "libpq keyword string"),
        ("dbname=tq", "postgresql://user:password@host:port/dbname URL instead"),
        ("postgresql://tq:S3cret@PW@host/db", "percent-encode"),
        ("postgresql://tq:pa/ss@host/db", "/ as %2F"),
        ("postgresql://tq:pa?ss@host/db", "? as %3F"),
        ("postgresql://tq@host/db?hunter2", "without '='"),
        ("postgresql:tq:hunter2@host/db", "'postgresql:' but not 'postgresql://'"),
        ("postgres:hunter2", "'postgres:' but not 'postgres://'"),
        ("", "empty"),
        ("   ", "empty"),
        ("postgresql://tq:hunter2@[::1/db", "not a valid database URL"),
    ],
)
def test_what_is_neither_a_path_nor_a_url_is_refused_without_its_secret(
    db: str, expected: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)) as refused:
        check_database(db)
    message = str(refused.value)
    for secret in ("hunter2", "S3cret", "PW@", "pa/ss", "pa?ss"):
        assert secret not in message, message


def test_paths_and_urls_that_work_are_accepted() -> None:
    for db in (
        "taskqueue.db",
        "./host=x.db",  # a file whose name holds '=' is given as a path
        "dir/a=b",
        "sqlite:///tq.db",
        "postgresql://tq:p%40ss@db.example:5432/tq?sslmode=require",
        "postgresql:///tq",
    ):
        assert database_problem(db) is None, db
        check_database(db)


def test_redact_hides_short_pieces_only_as_whole_words() -> None:
    pieces = ["a", "PW", "S3cret@PW", "hunter22"]
    assert redact("user a, host 'PW@h', PWD, S3cret@PW, xhunter22x", pieces) == (
        "user a, host '***@h', PWD, ***, x***x"
    )


def test_logged_secrets_are_scrubbed_in_messages_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from taskqueue.security import redact_logs

    url = "postgresql://tq:Log-S3cret-Pw@db.example/tq"
    redact_logs(secrets_of(url))
    log = logging.getLogger("taskqueue.test.redaction")
    with caplog.at_level(logging.WARNING):
        log.warning("could not reach %s", url)
        try:
            raise ValueError(f"driver echoed {url}")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert "Log-S3cret-Pw" not in text
    assert "could not reach postgresql://tq:***@db.example/tq" in text
    assert "ValueError: driver echoed postgresql://tq:***@db.example/tq" in text
