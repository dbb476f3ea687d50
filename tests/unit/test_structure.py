"""The layout keeps its promises, checked by reading the source tree.

* Every change of a task's status is in ``store/transitions/``: no ``SET status`` elsewhere.
* Only the backend modules (and the seam) import a database driver.
* The terminal statuses are spelled out once (the schema), not in every statement.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "taskqueue"
MIGRATIONS = SRC / "store" / "migrations"


def _sources() -> list[Path]:
    files = [p for p in SRC.rglob("*.py") if MIGRATIONS not in p.parents]
    assert len(files) > 40, "the source tree was not found"
    return files


def _offenders(pattern: re.Pattern[str], allowed: set[str]) -> list[str]:
    found = []
    for path in _sources():
        relative = path.relative_to(SRC).as_posix()
        if relative in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_only_the_transitions_module_sets_a_status() -> None:
    # In SQL (SET status, status = 'X', ...), and in rows being built (status=TaskStatus.X).
    pattern = re.compile(
        r"\bSET\s+status\b|status\s*=\s*'[A-Z]\w+'\s*,"
        r"|\bstatus\s*=\s*TaskStatus\.|[\"']status[\"']\]?\s*[:=]\s*(TaskStatus\.|_[PRCFX]\b)",
        re.IGNORECASE,
    )
    package = SRC / "store" / "transitions"
    allowed = {p.relative_to(SRC).as_posix() for p in package.glob("*.py")}
    assert _offenders(pattern, allowed) == []
    # The check itself can fail: the transitions' statements do set statuses.
    assert pattern.search((package / "statements.py").read_text())


@pytest.mark.parametrize("driver", ["sqlite3", "psycopg", "psycopg_pool"])
def test_only_the_backend_modules_import_a_driver(driver: str) -> None:
    pattern = re.compile(rf"^\s*(import|from)\s+{driver}\b")
    allowed = {"store/sqlite.py", "store/postgres.py", "store/backend.py"}
    assert _offenders(pattern, allowed) == []


def test_the_terminal_statuses_are_listed_once() -> None:
    pattern = re.compile(r"'Completed',\s*'Failed',\s*'Cancelled'")
    assert _offenders(pattern, set()) == []


def test_no_module_asks_which_database_it_is_on() -> None:
    pattern = re.compile(r"backend\s*==|is_postgres\(|isinstance\([^)]*(sqlite3|psycopg)")
    assert _offenders(pattern, {"store/sqlite.py", "store/postgres.py"}) == []


def test_the_claim_picks_exactly_the_rows_its_rule_starts_from() -> None:
    """The claim's statement has no status guard of its own: its pick must be the guard."""
    from taskqueue.engine import RULES, Transition
    from taskqueue.store.schema import RUNNABLE_SQL

    [source] = RULES[Transition.CLAIM].sources
    assert RUNNABLE_SQL.startswith(f"status = '{source.value}' AND ")
