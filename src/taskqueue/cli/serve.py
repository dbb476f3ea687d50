"""How ``taskqueue server`` listens: its HTTP options, the bind before the announcement, uvicorn.

The port is bound before anything else is started, so a busy port is one line and its own exit
code (:data:`EXIT_CANNOT_LISTEN`); "serving" is printed once uvicorn accepts connections on
it. Nothing here imports the server at import time: the client side of the CLI works with the
plain ``taskqueue`` install.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import importlib
import resource
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import click

__all__ = [
    "EXIT_CANNOT_LISTEN",
    "HttpOptions",
    "http_options",
    "next_steps",
    "open_listeners",
    "serve",
    "url_host",
]

#: ``taskqueue server`` cannot listen on its address: the port is in use (or not ours to bind).
EXIT_CANNOT_LISTEN = 7


@dataclass(frozen=True)
class HttpOptions:
    """The ``server`` options that shape what HTTP requests it accepts."""

    #: Origins whose pages may call the API (normalised ``scheme://host[:port]``).
    allowed_origins: tuple[str, ...] = ()
    #: Connections served at once.
    max_connections: int = 1000
    #: Largest request head, in bytes.
    max_header_bytes: int = 64 * 1024
    #: Seconds a connection has to send a request head.
    header_timeout: float = 10.0
    #: ``--no-auth``: no API key is ever asked for (loopback only).
    no_auth: bool = False
    #: Host names the API answers to (normalised); empty: the defaults (see :func:`api_settings`).
    allowed_hosts: tuple[str, ...] = ()
    #: Addresses or networks of proxies whose ``X-Forwarded-*`` headers are honoured.
    trusted_proxies: tuple[str, ...] = ()
    #: The certificate chain (PEM) to serve HTTPS with, and its private key; None: plain HTTP.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Longest a request waits for executions to end, in seconds (``--max-request-wait``).
    max_request_wait: float = 300.0

    @property
    def scheme(self) -> str:
        """``https`` with a certificate, else ``http``."""
        return "https" if self.tls_cert else "http"


class _ServerValue(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.3 on
    """A value of a repeatable option, checked by a parser of the server.

    Its environment variable is comma-separated.
    """

    def __init__(self, name: str, module: str, parser: str) -> None:
        self.name = name
        self.module = module
        self.parser = parser

    def split_envvar_value(self, rv: str) -> Sequence[str]:
        """Comma-separated values, blanks ignored."""
        return [part.strip() for part in rv.split(",") if part.strip()]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The value normalised, or a usage error saying what is wrong with it."""
        try:
            parse = getattr(importlib.import_module(self.module), self.parser)
        except ImportError:  # pragma: no cover - the command then says what to install
            return value
        try:
            return parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


#: The options of who may reach the server and how: hosts, proxies, TLS, authentication.
_REMOTE_OPTIONS = [
    click.option(
        "--no-auth",
        is_flag=True,
        help="Never ask for an API key: anyone on this machine can use the API. Only with a "
        "loopback --host; printed as a warning at start.",
    ),
    click.option(
        "--allowed-host",
        "allowed_hosts",
        multiple=True,
        type=_ServerValue("host", "taskqueue.server.hosts", "parse_allowed_host"),
        envvar="TASKQUEUE_ALLOWED_HOSTS",
        metavar="NAME",
        help="A host name (or address) clients use in the URL, which the API answers to; repeat "
        "for several, * for any (env TASKQUEUE_ALLOWED_HOSTS, comma-separated). Default: "
        "loopback names on loopback, else the listening address and this machine's hostname.",
    ),
    click.option(
        "--trusted-proxy",
        "trusted_proxies",
        multiple=True,
        type=_ServerValue("proxy", "taskqueue.server.hosts", "parse_trusted_proxy"),
        envvar="TASKQUEUE_TRUSTED_PROXIES",
        metavar="ADDR|CIDR",
        help="A reverse proxy (address or network) whose X-Forwarded-For, -Proto and -Host are "
        "honoured; repeat for several (env TASKQUEUE_TRUSTED_PROXIES, comma-separated). "
        "Default: none.",
    ),
    click.option(
        "--tls-cert",
        envvar="TASKQUEUE_TLS_CERT",
        metavar="FILE",
        help="Serve HTTPS with this certificate chain (PEM); needs --tls-key "
        "(env TASKQUEUE_TLS_CERT).",
    ),
    click.option(
        "--tls-key",
        envvar="TASKQUEUE_TLS_KEY",
        metavar="FILE",
        help="The private key (PEM) of --tls-cert (env TASKQUEUE_TLS_KEY).",
    ),
]

#: The options of how much the server takes in.
_LIMIT_OPTIONS = [
    click.option(
        "--allow-origin",
        "allow_origins",
        multiple=True,
        type=_ServerValue("origin", "taskqueue.server.guards", "parse_allowed_origin"),
        envvar="TASKQUEUE_ALLOW_ORIGINS",
        metavar="ORIGIN",
        help="A web origin (scheme://host[:port]) whose pages may call the API; repeat for "
        "several (env TASKQUEUE_ALLOW_ORIGINS, comma-separated).",
    ),
    click.option(
        "--max-connections",
        default=1000,
        show_default=True,
        envvar="TASKQUEUE_MAX_CONNECTIONS",
        type=click.IntRange(1, 100_000),
        help="Connections served at once; a request on one more is answered 503.",
    ),
    click.option(
        "--max-request-wait",
        default=300.0,
        show_default=True,
        envvar="TASKQUEUE_MAX_REQUEST_WAIT",
        type=click.FloatRange(0, 300),
        metavar="SECONDS",
        help="Longest an execute or batch-execute request (and a poll of its execution or "
        "batch) waits for the end before answering with what is still running.",
    ),
    # Hidden: the defaults suit every deployment; tests shorten them so they need not wait.
    click.option(
        "--max-header-bytes",
        default=64 * 1024,
        envvar="TASKQUEUE_MAX_HEADER_BYTES",
        hidden=True,
        type=click.IntRange(1024, 1024 * 1024),
    ),
    click.option(
        "--header-timeout",
        default=10.0,
        envvar="TASKQUEUE_HEADER_TIMEOUT",
        hidden=True,
        type=click.FloatRange(0.1, 3600),
    ),
]


def http_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the HTTP options to a command, passed to it as one ``http`` :class:`HttpOptions`."""

    @functools.wraps(function)
    def wrapper(
        *args: Any,
        allow_origins: tuple[str, ...],
        max_connections: int,
        max_header_bytes: int,
        header_timeout: float,
        no_auth: bool,
        allowed_hosts: tuple[str, ...],
        trusted_proxies: tuple[str, ...],
        tls_cert: str | None,
        tls_key: str | None,
        max_request_wait: float,
        **kwargs: Any,
    ) -> Any:
        kwargs["http"] = HttpOptions(
            allowed_origins=tuple(dict.fromkeys(allow_origins)),
            max_connections=max_connections,
            max_header_bytes=max_header_bytes,
            header_timeout=header_timeout,
            no_auth=no_auth,
            allowed_hosts=tuple(dict.fromkeys(allowed_hosts)),
            trusted_proxies=tuple(dict.fromkeys(trusted_proxies)),
            tls_cert=tls_cert or None,
            tls_key=tls_key or None,
            max_request_wait=max_request_wait,
        )
        return function(*args, **kwargs)

    decorated: Callable[..., Any] = wrapper
    for option in reversed([*_REMOTE_OPTIONS, *_LIMIT_OPTIONS]):
        decorated = option(decorated)
    return decorated


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def next_steps(url: str, workers: int, drain_timeout: float, needs_key: bool = False) -> str:
    """What to do once the server is up: the lines under its announcement.

    ``needs_key``: every request needs an API key (a server listening beyond loopback).
    """
    default = url in ("http://127.0.0.1:8080", "http://localhost:8080")
    client = "taskqueue" if default else f"taskqueue --base-url {url}"
    lines = []
    if needs_key:
        lines.append(
            "  API key: every request needs one: `taskqueue keys create --admin --name NAME` "
            "on this database, then TASKQUEUE_API_KEY=tq_... on the client"
        )
    lines.append(f"  try it:  {client} run -- echo hello")
    if workers == 0:
        lines.append("  (no worker runs here: start `taskqueue worker` on the same database)")
    lines += [
        f"  the API: {url}/openapi.json, described in docs/api.md",
        f"  stop:    Ctrl-C (running tasks get {drain_timeout:g}s to finish)",
    ]
    return "\n".join(lines)


def open_listeners(host: str, port: int) -> list[socket.socket]:
    """Sockets bound and listening on every address of ``host`` (``[::1]`` is ``::1``).

    A port that is in use, or an address that cannot be bound, is one line on stderr and exit
    code :data:`EXIT_CANNOT_LISTEN`.
    """
    name = host.strip("[]")
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        _cannot_listen(host, port, exc.strerror or str(exc))
    addresses = dict.fromkeys((family, str(address[0])) for family, *_, address in infos)
    sockets: list[socket.socket] = []
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            # A port of 0 is chosen at the first bind; the other addresses take the same.
            sock.bind((address, port or bound_port(sockets)))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRNOTAVAIL and len(addresses) > 1:
                continue  # e.g. localhost's ::1 where IPv6 is off, as asyncio does
            close_all(sockets)
            reason = "the address is already in use" if exc.errno == errno.EADDRINUSE else None
            _cannot_listen(host, port, reason or exc.strerror or str(exc))
        sockets.append(sock)
    if not sockets:
        _cannot_listen(host, port, "none of its addresses can be bound")
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    """Close the sockets :func:`open_listeners` opened (when the server will not run)."""
    for sock in sockets:
        sock.close()


def bound_port(sockets: list[socket.socket]) -> int:
    """The port the sockets listen on (0 if there are none)."""
    return int(sockets[0].getsockname()[1]) if sockets else 0


def _cannot_listen(host: str, port: int, reason: str) -> Any:
    click.echo(
        f"error: cannot listen on {url_host(host.strip('[]'))}:{port}: {reason} "
        "(is another server running? pick another --port)",
        err=True,
    )
    raise SystemExit(EXIT_CANNOT_LISTEN)


def _allow_descriptors(connections: int) -> None:
    """Raise the open-file limit (up to its hard limit) to fit ``connections`` and the rest."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))


def serve(app: Any, sockets: list[socket.socket], http: HttpOptions, banner: str) -> bool:
    """Serve ``app`` on ``sockets`` until SIGTERM or SIGINT; whether it ever served.

    ``banner`` goes to stderr once uvicorn accepts connections.
    """
    import uvicorn

    from taskqueue.server._protocol import HttpLimits, limited_protocol

    _allow_descriptors(http.max_connections)
    limits = HttpLimits(
        max_header_bytes=http.max_header_bytes,
        header_timeout=http.header_timeout,
        max_connections=http.max_connections,
    )
    config = uvicorn.Config(
        app,
        http=limited_protocol(limits),
        ws="none",
        log_level="warning",
        log_config=None,  # uvicorn's loggers go through the one handler setup_logging made
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        lifespan="on",
        # HTTPS when asked: the files were checked before the port was bound. An empty cipher
        # list keeps OpenSSL's defaults (uvicorn's own default narrows them to TLSv1 suites).
        ssl_certfile=http.tls_cert,
        ssl_keyfile=http.tls_key,
        ssl_ciphers="",
    )
    served = _server_class()(config, lambda: click.echo(banner, err=True))
    served.run(sockets=sockets)
    return bool(served.started)


def _server_class() -> Any:
    import uvicorn

    class QuietExitServer(uvicorn.Server):
        """Uvicorn's server: it announces itself once it serves, and exits 0 after draining.

        It drains on SIGTERM or SIGINT; uvicorn's own server re-raises the signal once it has
        shut down, so the process would die "killed by SIGTERM" though it drained cleanly.
        """

        def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
            super().__init__(config)
            self.announce = announce

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                # What start-up built lives as long as the process: the collector need not
                # walk it again, each collection or at exit (where it took half a second).
                gc.freeze()
                self.announce()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # Event streams never end by themselves: end them, so the drain does not wait.
            hub = getattr(getattr(self.config.app, "state", None), "events", None)
            if hub is not None:
                hub.close()
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            original = {
                sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return QuietExitServer
