"""``taskqueue keys ...``: make, list, revoke and rotate API keys.

Through the API (an admin key for every project), or straight on the database with ``--db``:
that is how the first key is made, with no server running (``keys create --admin`` without any
key configured works on the default database, ``taskqueue.db``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from taskqueue.cli._context import CliContext, client_command, relative, rows_table
from taskqueue.cli._ids import resolve_project, short_id
from taskqueue.models import ApiKey, NewApiKey

__all__ = ["keys"]

_DURATION_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([smhdw]?)$", re.ASCII)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The longest duration taken (a hundred years): past it a date overflows.
_MAX_DURATION_S = 36500 * 86400


def parse_duration(text: str, option: str, *, positive: bool = False) -> float:
    """Seconds in ``30m``, ``12h``, ``90d`` or ``3600`` (seconds); more than 0 if ``positive``."""
    match = _DURATION_RE.match(text.strip().lower())
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not a duration: give seconds or a number and s, m, h, d or w "
            "(for example 30d)",
            param_hint=option,
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > _MAX_DURATION_S:
        raise click.BadParameter(f"{text!r} is more than 100 years", param_hint=option)
    if positive and seconds <= 0:
        raise click.BadParameter(f"{text!r} is not more than 0", param_hint=option)
    return seconds


def key_table(items: Sequence[ApiKey]) -> Table:
    """Keys as a table: never a secret (the API has none to give)."""
    table = rows_table(
        None,
        ["ID", "NAME", "PREFIX", "SCOPES", "PROJECTS", "STATUS", "CREATED", "LAST USED", "EXPIRES"],
    )
    for key in items:
        table.add_row(
            short_id(key.id),
            key.name,
            key.prefix,
            ",".join(key.scopes),
            "all" if key.projects is None else ",".join(short_id(p) for p in key.projects),
            key.status,
            relative(key.created_at),
            relative(key.last_used_at) if key.last_used_at else "never",
            relative(key.expires_at) if key.expires_at else "never",
        )
    return table


def _database_options(function: Any) -> Any:
    function = click.option(
        "--secret-file",
        envvar="TASKQUEUE_SECRET_FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="With --db: the server's secret file (default: beside a SQLite database; required "
        "on PostgreSQL; env TASKQUEUE_SECRET_FILE).",
    )(function)
    return click.option(
        "--db",
        envvar="TASKQUEUE_DATABASE_URL",
        default=None,
        help="Work on this database directly, without a server (env TASKQUEUE_DATABASE_URL).",
    )(function)


def _has_credentials(ctx: CliContext) -> bool:
    if ctx.api_key:
        return True
    from taskqueue.client._config import resolve_config

    config = resolve_config(ctx.base_url, None, ctx.profile)
    return bool(config.api_key or getattr(config, "public_key", None))


def _on_database(db: str | None, secret_file: Path | None) -> tuple[str, Path | None] | None:
    if db is None:
        return None
    from taskqueue.cli._database import database  # the checks every database command makes

    return database(db, None), secret_file


def _run_local(db: str, secret_file: Path | None, work: Any) -> Any:
    """Run ``work(store, pepper)`` on the database, with the pepper of its servers."""
    from taskqueue.apikeys import PepperError, fingerprint, load_pepper
    from taskqueue.server.keyring import secret_file_for
    from taskqueue.service import UnusableDatabase, open_store

    path = secret_file_for(db, secret_file)
    if path is None:
        raise click.UsageError(
            "keys on PostgreSQL need the servers' secret file: give --secret-file PATH "
            "(or TASKQUEUE_SECRET_FILE), the same file the servers are given"
        )

    def pepper_of() -> bytes:
        try:
            return load_pepper(path, create=True)
        except PepperError as exc:
            raise click.ClickException(str(exc)) from None

    pepper = pepper_of() if path.exists() else None
    try:
        store = open_store(db)
    except UnusableDatabase as exc:
        from taskqueue.cli._database import explain

        raise explain(exc) from exc

    async def run() -> Any:
        from taskqueue.store import Conflict, NotFound

        nonlocal pepper
        store.start()
        try:
            if pepper is None:  # a new pepper only for a database without keys
                if await store.keys.rows():
                    raise click.ClickException(
                        f"the secret file {path} does not exist, and this database has API "
                        "keys made with it; give the servers' --secret-file"
                    )
                pepper = pepper_of()
            if not await store.keys.check_pepper(fingerprint(pepper)):
                raise click.ClickException(
                    f"the secret file {path} is not the one this database's keys were made "
                    "with; give the servers' --secret-file"
                )
            return await work(store, pepper)
        except (NotFound, Conflict) as exc:  # no such key, or a part of more than one id
            raise click.ClickException(str(exc)) from None
        finally:
            await store.close()

    return asyncio.run(run())


@click.group()
def keys() -> None:
    """Make, list, revoke and rotate API keys."""


@keys.command("create")
@click.option("--name", required=True, help="What the key is for (shown in lists and logs).")
@click.option(
    "--scope",
    "scopes",
    type=click.Choice(["read", "write", "admin"]),
    multiple=True,
    help="read (GET), write (create and change tasks and projects) or admin (keys, workers, "
    "deleting projects); each includes those before it. Default: read.",
)
@click.option("--admin", is_flag=True, help="Same as --scope admin.")
@click.option("--project", "projects", multiple=True, help="Limit the key to this project "
              "(id or name); repeat for more. Default: every project.")  # fmt: skip
@click.option("--pair", is_flag=True, help="A key pair for signed requests instead of a key.")
@click.option("--expires-in", default=None, metavar="DURATION", help="e.g. 90d, 12h.")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Requests per second the key may make.")  # fmt: skip
@click.option("--burst", type=click.IntRange(1), default=None, help="Requests at once.")
@_database_options
@client_command
def create_key(
    ctx: CliContext,
    name: str,
    scopes: tuple[str, ...],
    admin: bool,
    projects: tuple[str, ...],
    pair: bool,
    expires_in: str | None,
    rate_limit: float | None,
    burst: int | None,
    db: str | None,
    secret_file: Path | None,
) -> None:
    """Make an API key; its secret is printed this once (on stdout, alone)."""
    chosen = sorted({*scopes, *(["admin"] if admin else [])}) or ["read"]
    expires = None
    if expires_in is not None:
        expires = datetime.now(timezone.utc) + timedelta(
            seconds=parse_duration(expires_in, "--expires-in", positive=True)
        )
    if db is None and admin and not _has_credentials(ctx):
        db = os.environ.get("TASKQUEUE_DATABASE_URL") or "taskqueue.db"  # the first key
    local = _on_database(db, secret_file)
    fields: dict[str, Any] = {
        "name": name,
        "scopes": chosen,
        "pair": pair,
        "expires_at": expires,
        "rate_limit": rate_limit,
        "burst": burst,
    }
    if local is None:
        ids = [resolve_project(ctx, p) or p for p in projects] if projects else None
        made = ctx.client.create_key(projects=ids, **fields)
    else:
        made = _create_local(*local, projects, fields)
        click.echo(f"made on the database {local[0]} (no server needed)", err=True)
    _show_new(ctx, made)


def _create_local(
    db: str, secret_file: Path | None, projects: Sequence[str], fields: dict[str, Any]
) -> NewApiKey:
    from taskqueue.apikeys import new_key_row
    from taskqueue.models import KeyCreate
    from taskqueue.store import InvalidInput
    from taskqueue.store.codec import to_us
    from taskqueue.store.ids import new_id

    data = KeyCreate.model_validate(
        {k: v for k, v in fields.items() if k != "pair" and v is not None}
        | {"kind": "pair" if fields["pair"] else "bearer"}
    )

    async def work(store: Any, pepper: bytes) -> NewApiKey:
        ids: list[str] | None = None
        if projects:
            ids = [await _project_id(store, p) for p in projects]
        row, secret = new_key_row(
            pepper,
            new_id(),
            name=data.name,
            scopes=list(data.scopes),
            projects=ids,
            kind=data.kind,
            expires_at=to_us(data.expires_at) if data.expires_at else None,
            rate_limit=data.rate_limit,
            burst=data.burst,
        )
        try:
            key = await store.keys.create(row)
        except InvalidInput as exc:
            raise click.ClickException(exc.details[0]["msg"]) from None
        return NewApiKey.model_validate({**key, **secret})

    result: NewApiKey = _run_local(db, secret_file, work)
    return result


async def _project_id(store: Any, given: str) -> str:
    page, _ = await store.list_projects(10_000, 0)
    for project in page:
        if given in (project["id"], project["name"]):
            return str(project["id"])
    part = given.lower()
    matches = [
        str(p["id"])
        for p in page
        if len(part) >= 4 and (str(p["id"]).startswith(part) or str(p["id"]).endswith(part))
    ]
    if len(matches) > 1:  # ids made in the same minute share their start: never the first
        raise click.UsageError(
            f"{given!r} matches {len(matches)} projects; give more of the id, or the name"
        )
    if not matches:
        raise click.ClickException(f"no project {given!r} in this database")
    return matches[0]


def _show_new(ctx: CliContext, made: NewApiKey) -> None:
    if ctx.output != "table":
        ctx.emit(made)
        return
    what = f"key {made.name!r} ({made.prefix}, scopes {','.join(made.scopes)})"
    if made.key is not None:
        click.echo(made.key)
        click.echo(f"made {what}; this is the only time the key is shown", err=True)
    else:
        click.echo(f"TASKQUEUE_PUBLIC_KEY={made.public_key}")
        click.echo(f"TASKQUEUE_SECRET_KEY={made.secret_key}")
        click.echo(f"made key pair {what}; this is the only time the secret is shown", err=True)


@keys.command("list")
@_database_options
@client_command
def list_keys(ctx: CliContext, db: str | None, secret_file: Path | None) -> None:
    """Every key: name, prefix, scopes, projects, created, last used, expiry, status."""
    local = _on_database(db, secret_file)
    if local is None:
        found = ctx.client.list_keys()
    else:

        async def work(store: Any, pepper: bytes) -> list[ApiKey]:
            return [ApiKey.model_validate(k) for k in await store.keys.shown()]

        found = _run_local(*local, work)
    ctx.emit(found, lambda: key_table(found) if found else "no keys")


@keys.command("revoke")
@click.argument("key")
@_database_options
@client_command
def revoke_key(ctx: CliContext, key: str, db: str | None, secret_file: Path | None) -> None:
    """Revoke a key (by id, prefix or the start of its id): refused everywhere within a second."""
    local = _on_database(db, secret_file)
    if local is None:
        revoked = ctx.client.revoke_key(_key_id(ctx, key))
    else:

        async def work(store: Any, pepper: bytes) -> ApiKey:
            return ApiKey.model_validate(await store.keys.revoke(key))

        revoked = _run_local(*local, work)
    ctx.emit(revoked, lambda: f"revoked {revoked.name} ({revoked.prefix})")


@keys.command("rotate")
@click.argument("key")
@click.option("--grace", default="1h", show_default=True, metavar="DURATION",
              help="How long the old key keeps working.")  # fmt: skip
@client_command
def rotate_key(ctx: CliContext, key: str, grace: str) -> None:
    """Make a new key like KEY; KEY keeps working for the grace period, then expires."""
    made = ctx.client.rotate_key(_key_id(ctx, key), grace_seconds=parse_duration(grace, "--grace"))
    _show_new(ctx, made)


def _key_id(ctx: CliContext, given: str) -> str:
    """The id of the key ``given`` names: an id, a prefix, or the start or end of an id.

    Key ids are UUIDv7, so keys made in the same minute share their start: a part that
    matches more than one key is refused, never taken to mean the first.
    """
    found = ctx.client.list_keys()
    exact = [str(k.id) for k in found if given in (str(k.id), k.prefix)]
    if exact:
        return exact[0]
    part = given.lower()
    matches = [
        str(k.id)
        for k in found
        if len(part) >= 4 and (str(k.id).startswith(part) or str(k.id).endswith(part))
    ]
    if len(matches) > 1:
        raise click.UsageError(
            f"{given!r} matches {len(matches)} keys ({', '.join(matches[:5])}); give more of "
            "the id, or the key's prefix"
        )
    if not matches:
        raise click.ClickException(
            f"no key has the prefix {given!r} or an id that starts or ends with it "
            "(see `taskqueue keys list`)"
        )
    return matches[0]
