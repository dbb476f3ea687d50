"""Database names as people give them: which are usable, how to print them, what is secret.

A database is a SQLite file path, a ``sqlite:///`` URL or a ``postgresql://`` URL. Everything
here reads the string itself, without a driver, and errs on the side of hiding: a part that
might hold a password is never printed.

* :func:`describe_database` is the string fit for a banner or an error: the password of the
  user info (whatever it contains, ``@`` included) and the value of every query parameter not
  known to be harmless are ``***``; a libpq keyword string is masked the same way.
* :func:`database_problem` says why a string is not a usable database: a libpq keyword string
  (``host=... password=...``, which would otherwise be taken for a file name), a database
  scheme without ``//``, a URL whose user info holds an unescaped ``@``, ``/`` or ``#`` (the
  drivers would read part of the password as the host, and echo it in their errors), a query
  parameter without ``=``.
* :func:`secrets_of` lists the strings an error message must not contain, so a driver's error
  can be scrubbed before it is shown.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["database_problem", "describe_database", "looks_like_keywords", "secrets_of"]

#: Query parameters and libpq keywords whose values are never secret (others print as ***).
SAFE_KEYS = frozenset(
    {
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "dbname",
        "fallback_application_name",
        "gssencmode",
        "host",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "load_balance_hosts",
        "port",
        "replication",
        "require_auth",
        "service",
        "sslcert",
        "sslcrl",
        "sslmode",
        "sslrootcert",
        "target_session_attrs",
        "tcp_user_timeout",
        "user",
        # SQLite URI parameters
        "cache",
        "check_same_thread",
        "immutable",
        "mode",
        "nolock",
        "timeout",
        "uri",
    }
)
_MASK = "***"
#: ``key=`` at the start: what a libpq keyword string (``host=db password=x``) begins with.
_KEYWORDS_START = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
#: One ``key = value`` of a libpq keyword string; the value is quoted or runs to a space.
_KEYWORD_PAIR = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)*)\s*", re.DOTALL
)
_DATABASE_SCHEME = re.compile(r"(postgres|postgresql(\+\w+)?|sqlite(\+\w+)?):(?!//)", re.I)
#: Characters a password may hold only percent-encoded in a URL.
_BREAKS_URL = "@/#"


def looks_like_keywords(db: str) -> bool:
    """Whether ``db`` reads as a libpq keyword string (``host=... dbname=...``)."""
    return "://" not in db and _KEYWORDS_START.match(db) is not None


def _split_url(db: str) -> tuple[str, str | None, str, str | None]:
    """``(scheme, userinfo, host and path, query)`` of a URL, hiding on the cautious side.

    The user info ends at the last ``@`` before the query. When there is no ``@`` before the
    first ``?`` but one after it, a ``?`` in the password is more likely than an ``@`` in a
    query, so the user info is taken to run to that last ``@``.
    """
    scheme, rest = db.split("://", 1)
    head, mark, query = rest.partition("?")
    at = head.rfind("@")
    if at >= 0:
        return scheme, head[:at], head[at + 1 :], query if mark else None
    if "@" in query:
        at = rest.rfind("@")
        host_path, mark, query = rest[at + 1 :].partition("?")
        return scheme, rest[:at], host_path, query if mark else None
    return scheme, None, head, query if mark else None


def _mask_userinfo(userinfo: str) -> str:
    if ":" not in userinfo:
        return userinfo  # a user name alone: no password
    user = userinfo.split(":", 1)[0]
    if any(c in user for c in _BREAKS_URL + "?"):
        return _MASK
    return f"{user}:{_MASK}"


def _mask_query(query: str) -> str:
    parts = []
    for piece in query.split("&"):
        key, eq, _ = piece.partition("=")
        if not eq:
            parts.append(_MASK if piece else piece)
        elif unquote(key).lower() in SAFE_KEYS:
            parts.append(piece)
        else:
            parts.append(f"{key}={_MASK}")
    return "&".join(parts)


def _keyword_pairs(db: str) -> tuple[list[tuple[str, str]], str]:
    """The ``(key, raw value)`` pairs of a keyword string, and what could not be read."""
    pairs = []
    position = 0
    while position < len(db):
        match = _KEYWORD_PAIR.match(db, position)
        if match is None or match.end() == position:
            break
        pairs.append((match.group(1), match.group(2)))
        position = match.end()
    return pairs, db[position:]


def describe_database(db: str) -> str:
    """``db`` fit for a log line or an error: every part that may hold a secret is ``***``."""
    if "://" in db:
        scheme, userinfo, host_path, query = _split_url(db)
        text = f"{scheme}://"
        if userinfo is not None:
            text += f"{_mask_userinfo(userinfo)}@"
        text += host_path
        if query is not None:
            text += f"?{_mask_query(query)}"
        return text
    if looks_like_keywords(db):
        pairs, rest = _keyword_pairs(db)
        shown = [f"{k}={v if k.lower() in SAFE_KEYS else _MASK}" for k, v in pairs]
        if rest.strip():
            shown.append(_MASK)
        return " ".join(shown)
    return db


def secrets_of(db: str) -> list[str]:
    """Every string of ``db`` that an error or a log line must not show.

    The password (as written and percent-decoded), the values of the parameters
    :func:`describe_database` hides, and the pieces of each that a driver might echo on its
    own (a password cut at an ``@`` and taken for a host name).
    """
    found: list[str] = []
    if "://" in db:
        _, userinfo, _, query = _split_url(db)
        if userinfo is not None and ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
        for piece in (query or "").split("&"):
            key, eq, value = piece.partition("=")
            if not eq:
                found.append(piece)
            elif unquote(key).lower() not in SAFE_KEYS:
                found.append(value)
    elif looks_like_keywords(db):
        pairs, rest = _keyword_pairs(db)
        found.extend(v for k, v in pairs if k.lower() not in SAFE_KEYS)
        found.append(rest.strip())
    pieces: list[str] = []
    for secret in found:
        for form in {secret, unquote(secret), secret.strip("'")}:
            pieces.append(form)
            pieces.extend(re.split(r"[@/?#:&%]", form))
    return sorted({p for p in pieces if p}, key=len, reverse=True)


def database_problem(db: str) -> str | None:
    """Why ``db`` is neither a usable file path nor a usable URL, or None when it is usable.

    The reason never repeats a secret: it shows ``db`` as :func:`describe_database` does.
    """
    if not db.strip():
        return "the database is empty: give a SQLite file path or a postgresql:// URL"
    if "\0" in db:
        return "the database name holds a NUL character"
    if looks_like_keywords(db):
        return (
            f"{describe_database(db)!r} is a libpq keyword string, which taskqueue does not "
            "take: give a postgresql://user:password@host:port/dbname URL instead (a file "
            "whose name holds '=' can be given as ./NAME)"
        )
    if "://" not in db:
        scheme = _DATABASE_SCHEME.match(db)
        if scheme:  # not shown: without '//', nothing tells where a password would end
            return (
                f"the database starts with {scheme.group(0)!r} but not "
                f"{scheme.group(0) + '//'!r}: give a URL such as postgresql://user@host/dbname"
            )
        return None
    return _url_problem(db)


def _url_problem(db: str) -> str | None:
    scheme, userinfo, _, query = _split_url(db)
    shown = describe_database(db)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return f"{shown!r} does not start with a URL scheme"
    if userinfo is not None and any(c in userinfo for c in _BREAKS_URL + "?"):
        return (
            f"{shown!r} is ambiguous: its user name or password holds '@', '/', '?' or '#', "
            "which a URL reserves; percent-encode them (@ as %40, / as %2F, ? as %3F, # as %23)"
        )
    if query is not None and any(p and "=" not in p for p in query.split("&")):
        return f"{shown!r} has a query parameter without '=' (write key=value, joined by '&')"
    return None
