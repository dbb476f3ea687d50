"""Which ``Host`` the API answers to, and which proxies may say who the client is.

Two ASGI middlewares, outermost first:

* :class:`ProxyHeadersMiddleware` honours ``X-Forwarded-For``, ``X-Forwarded-Proto`` and
  ``X-Forwarded-Host`` on requests whose peer is a trusted proxy (``--trusted-proxy``), and on
  no others. Afterwards ``scope["client"]`` is the real client's address (the rightmost hop of
  ``X-Forwarded-For`` that is not a trusted proxy), ``scope["scheme"]`` the scheme the client
  used, and the ``Host`` header the host it asked for, so everything inside (this module's host
  guard, the origin guard, rate limits keyed on the client) sees the client's request, not the
  proxy's. From any other peer the headers change nothing: a client cannot claim another
  address by sending them itself.
* :class:`HostGuardMiddleware` refuses (403) a request whose ``Host`` is not one the server
  answers to, or that has none. A web page cannot choose the ``Host`` its browser sends, but
  it can point a name of its own at the server's address (DNS rebinding) and so talk to the
  server as if it were its own origin; refusing unknown names stops that.

What the server answers to (:func:`host_allowed`):

* the names and addresses of ``allowed_hosts`` (``--allowed-host``), without port, compared
  case-insensitively (addresses as addresses: ``::1`` is ``0:0::1``);
* an unspecified address in ``allowed_hosts`` (``0.0.0.0``, ``::``: what a server listening on
  every address is given by default) stands for the address each connection arrived on, so a
  client that names the server by the address it reaches it at is answered;
* loopback names (``localhost``, ``127.x.x.x``, ``::1``), when the connection arrived on a
  loopback address; with ``allowed_hosts`` empty, these alone;
* anything, when ``allowed_hosts`` holds ``*`` (the check is off: a browser on a machine that
  can reach the server can then be used against it by any web page, through DNS rebinding).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from taskqueue.server.errors import error_response, request_id_of

__all__ = [
    "ANY_HOST",
    "HostGuardMiddleware",
    "ProxyHeadersMiddleware",
    "host_allowed",
    "host_name",
    "is_loopback",
    "parse_allowed_host",
    "parse_trusted_proxy",
]

log: logging.Logger = logging.getLogger("taskqueue.server")

#: The ``allowed_hosts`` entry that turns the Host check off.
ANY_HOST = "*"
#: The loopback names, as the 403 lists them.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: A DNS name as ``--allowed-host`` takes it: labels of letters, digits, ``-`` and ``_``.
_NAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$")
#: Longest value of a forwarded header honoured (a proxy's chain of hops, not a body).
_MAX_FORWARDED = 4096
#: The unspecified addresses: in ``allowed_hosts``, the address each connection arrived on.
UNSPECIFIED = frozenset({"0.0.0.0", "::"})  # noqa: S104 - addresses compared, not bound
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name or address of a ``Host`` value, without port or brackets, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") <= 1 else host


def _canonical(name: str) -> str:
    """``name`` in one spelling: an address as ``ipaddress`` writes it, a name lower-cased."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower().rstrip(".")


def parse_allowed_host(value: str) -> str:
    """A host for ``--allowed-host`` (a name, an address, or ``*``); ValueError saying why not."""
    given = value.strip()
    if given == ANY_HOST:
        return ANY_HOST
    bare = given[1:-1] if given.startswith("[") and given.endswith("]") else given
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    name = bare.lower().rstrip(".")
    if _NAME.match(name) and not name.replace(".", "").isdigit():
        return name
    hint = " without a port" if ":" in bare else ""
    raise ValueError(
        f"{value!r} is not a host name or address{hint}: give the name clients put in the URL "
        "(tasks.example.com, 10.0.0.5, ::1), or * to answer to any"
    )


def parse_trusted_proxy(value: str) -> str:
    """An address or network for ``--trusted-proxy``, normalised; ValueError saying why not."""
    try:
        return str(ipaddress.ip_network(value.strip().strip("[]")))
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not an address or network of proxies ({exc}): give an address "
            "(10.0.0.7, ::1) or a network (10.0.0.0/24, fd00::/64)"
        ) from None


def host_allowed(name: str, allowed: frozenset[str], local_address: str | None) -> bool:
    """Whether a request for host ``name`` (from :func:`host_name`) is answered.

    ``local_address`` is the address the connection arrived on (``scope["server"]``).
    """
    if ANY_HOST in allowed:
        return True
    canonical = _canonical(name)
    if canonical in allowed:
        return True
    if local_address is None:
        return False
    local = _canonical(local_address)
    if is_loopback(local) and is_loopback(canonical):
        return True
    unspecified = "::" if ":" in local else "0.0.0.0"  # noqa: S104 - compared, not bound
    return unspecified in allowed and canonical == local


def _header(scope: Scope, wanted: bytes) -> str | None:
    """Every ``wanted`` header of the request joined by commas, as one list; None if absent."""
    values = [value for name, value in scope["headers"] if name == wanted]
    if not values:
        return None
    return b",".join(values).decode("latin-1")


class HostGuardMiddleware:
    """Refuse requests whose ``Host`` is not one the server answers to, or that have none.

    HTTP/1.1 requires the header; a request without one is refused alike, so no request is
    served without the check.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed: frozenset[str] = frozenset(parse_allowed_host(h) for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        server = scope.get("server")
        local = server[0] if server else None
        if (
            host is not None
            and "," not in host
            and host_allowed(host_name(host), self.allowed, local)
        ):
            await self.app(scope, receive, send)
            return
        response = error_response(403, self._refusal(host, local), request_id_of(scope))
        await response(scope, receive, send)

    def _refusal(self, host: str | None, local: str | None) -> str:
        if host is None:
            what = "the request has no Host header"
        else:
            what = f"Host {host[:100]!r} is not a name this server answers to"
        names = sorted(self.allowed - UNSPECIFIED)
        if self.allowed & UNSPECIFIED:
            names.append("the address the request was sent to")
        if local is not None and is_loopback(local):
            names += [name for name in LOOPBACK_NAMES if name not in names]
        allowed = ", ".join(names) if names else "no name at all"
        return (
            f"{what} (it answers to: {allowed}); to answer to another name, start the server "
            "with --allowed-host NAME"
        )


def _forwarded_client(forwarded_for: str, trusted: tuple[IpNetwork, ...]) -> str | None:
    """The client of an ``X-Forwarded-For`` chain, or None if the chain names no address.

    The client is the rightmost hop that is not a trusted proxy (the leftmost if every hop is
    one): whatever is left of it was written by the client or by proxies nobody vouches for.
    """
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    client = None
    for hop in reversed(hops):
        address = _hop_address(hop)
        if address is None:
            return client  # a hop that is no address: nothing left of it can be believed
        client = str(address)
        if not any(address in network for network in trusted):
            return client
    return client


def _hop_address(hop: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of one ``X-Forwarded-For`` hop (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``)."""
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return ipaddress.ip_address(hop)
    except ValueError:
        return None


def _last(value: str | None) -> str | None:
    """The rightmost entry of a comma-separated header (the one the nearest proxy set)."""
    if value is None:
        return None
    last = value.rsplit(",", 1)[-1].strip()
    return last or None


class ProxyHeadersMiddleware:
    """Take the client's address, scheme and host from ``X-Forwarded-*``, from trusted proxies.

    Only a request whose peer address is in ``trusted_proxies`` (addresses or networks) is
    rewritten; with none given, nothing is ever trusted. Of ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` the last value counts (the one the nearest proxy set); a scheme other
    than ``http`` or ``https`` is ignored.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.trusted: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(parse_trusted_proxy(proxy)) for proxy in trusted_proxies
        )

    def trusts(self, peer: str) -> bool:
        """Whether ``peer`` is a trusted proxy's address."""
        address = _hop_address(peer)
        return address is not None and any(address in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        client = scope.get("client")
        if scope["type"] == "http" and self.trusted and client and self.trusts(client[0]):
            self._rewrite(scope, client[0])
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Scope, peer: str) -> None:
        forwarded_for = _header(scope, b"x-forwarded-for")
        if forwarded_for is not None and len(forwarded_for) <= _MAX_FORWARDED:
            address = _forwarded_client(forwarded_for, self.trusted)
            if address is not None:
                scope["client"] = (address, 0)
                log.debug("request via proxy %s from client %s", peer, address)
        proto = (_last(_header(scope, b"x-forwarded-proto")) or "").lower()
        if proto in ("http", "https"):
            scope["scheme"] = proto
        host = _last(_header(scope, b"x-forwarded-host"))
        if host is not None and len(host) <= 256:
            headers = [(name, value) for name, value in scope["headers"] if name != b"host"]
            scope["headers"] = [(b"host", host.encode("latin-1")), *headers]
