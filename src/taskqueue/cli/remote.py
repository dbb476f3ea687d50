"""What ``taskqueue server`` decides from where it listens: authentication, hosts, TLS, its URL.

* A loopback ``--host`` keeps the defaults: API keys once any exists (``auth="auto"``), loopback
  names only. ``--no-auth`` turns keys off there, and only there.
* Any other ``--host`` requires an API key on every request (``auth="required"``) and, unless
  ``--allowed-host`` says otherwise, answers to the addresses it listens on (an unspecified
  address, ``0.0.0.0`` or ``::``, stands for the address each connection arrived on) and to
  this machine's hostname.
* ``--tls-cert`` and ``--tls-key`` are checked together, by loading them as the server will,
  before anything listens.

Nothing here imports the server at import time.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import TYPE_CHECKING, Any

import click

from taskqueue.cli.serve import HttpOptions, bound_port, url_host

if TYPE_CHECKING:
    from taskqueue.server import ServerSettings

__all__ = ["NO_AUTH_WARNING", "api_settings", "check_serving", "public_url"]

#: What ``--no-auth`` prints on stderr at start.
NO_AUTH_WARNING = (
    "warning: --no-auth: API keys are off; anyone on this machine (every local user and "
    "process) can use the API without a key, and so run any command as this server's user"
)


def _is_loopback(host: str) -> bool:
    from taskqueue.server import is_loopback

    return is_loopback(host.strip("[]"))


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def check_serving(host: str, http: HttpOptions) -> None:
    """Refuse what cannot be served, before anything listens.

    That is ``--no-auth`` beyond loopback, and TLS files that are missing, unreadable, invalid
    or do not belong together.
    """
    if http.no_auth and not _is_loopback(host):
        raise click.UsageError(
            f"--no-auth is refused with --host {host}: a server reachable from other machines "
            "always asks for an API key. Drop --no-auth (and give clients a key), or listen on "
            "a loopback --host (127.0.0.1, ::1, localhost)"
        )
    if (http.tls_cert is None) != (http.tls_key is None):
        given, missing = (
            ("--tls-cert", "--tls-key") if http.tls_cert else ("--tls-key", "--tls-cert")
        )
        raise click.UsageError(
            f"{given} needs {missing}: HTTPS takes a certificate chain and its private key, "
            "both PEM files (env TASKQUEUE_TLS_CERT, TASKQUEUE_TLS_KEY)"
        )
    if http.tls_cert is not None and http.tls_key is not None:
        _check_tls(http.tls_cert, http.tls_key)


class _Encrypted(Exception):
    """The private key asks for a passphrase."""


def _no_passphrase() -> bytes:
    raise _Encrypted  # else OpenSSL would prompt for it on the terminal


#: What each TLS file must hold, by the PEM label its blocks carry.
_PEM_LABELS = (
    ("--tls-cert", b"-----BEGIN CERTIFICATE-----", "a PEM certificate"),
    ("--tls-key", b"PRIVATE KEY-----", "a PEM private key"),
)


def _check_tls(cert: str, key: str) -> None:
    """Load the certificate and key as uvicorn will; a usage error naming what is wrong."""
    for path, (option, label, what) in zip((cert, key), _PEM_LABELS, strict=True):
        try:
            with open(path, "rb") as handle:
                content = handle.read(1024 * 1024)
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {path}: {exc.strerror or exc}", param_hint=option
            ) from None
        if label not in content:
            raise click.BadParameter(f"{path} does not hold {what}", param_hint=option)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _Encrypted:
        raise click.BadParameter(
            f"{key} is encrypted; the server needs the key unencrypted (readable by its user "
            "alone: chmod 600)",
            param_hint="--tls-key",
        ) from None
    except ssl.SSLError as exc:
        reason = "the key is not the certificate's" if exc.reason == "KEY_VALUES_MISMATCH" else exc
        raise click.UsageError(
            f"cannot serve HTTPS with --tls-cert {cert} and --tls-key {key}: {reason} (give "
            "a PEM certificate chain, the server's certificate first, and that certificate's "
            "private key)"
        ) from None


def _default_hosts(host: str, addresses: list[str]) -> tuple[str, ...]:
    """What a server beyond loopback answers to without ``--allowed-host``.

    ``--host`` itself, the addresses it listens on, and this machine's hostname.
    """
    from taskqueue.server.hosts import parse_allowed_host

    names: list[str] = []
    for candidate in (host.strip("[]"), *addresses, socket.gethostname()):
        try:
            names.append(parse_allowed_host(candidate))
        except ValueError:
            continue  # a hostname that is no DNS name (odd, but then clients cannot use it)
    return tuple(dict.fromkeys(names))


def api_settings(
    host: str, sockets: list[socket.socket], http: HttpOptions, **fields: Any
) -> ServerSettings:
    """The API's settings for a server on ``host``, listening on ``sockets``.

    ``fields`` are the settings decided elsewhere (``secret_file``, limits), as given.
    """
    from taskqueue.server import ServerSettings

    loopback = _is_loopback(host)
    allowed = http.allowed_hosts
    if not allowed and not loopback:
        allowed = _default_hosts(host, [str(sock.getsockname()[0]) for sock in sockets])
    return ServerSettings(
        allowed_origins=http.allowed_origins,
        auth="off" if http.no_auth else ("auto" if loopback else "required"),
        allowed_hosts=allowed,
        trusted_proxies=http.trusted_proxies,
        max_request_wait=http.max_request_wait,
        **fields,
    )


def public_url(host: str, sockets: list[socket.socket], http: HttpOptions) -> str:
    """The URL the banner names, with the scheme and the bound port.

    Its host is ``--host``, or for an unspecified address the first allowed host name (else this
    machine's hostname).
    """
    shown = host.strip("[]")
    if _is_unspecified(shown):
        names = [name for name in http.allowed_hosts if name != "*" and not _is_unspecified(name)]
        shown = names[0] if names else socket.gethostname()
    return f"{http.scheme}://{url_host(shown)}:{bound_port(sockets)}"
