"""The host guard and the proxy headers, as pure rules and through the ASGI stack in memory.

The middlewares run as the server stacks them (proxy headers outside the host guard) around an
app that echoes what it was given: the client address, the scheme and the ``Host``. Each
request comes from a chosen peer (``httpx.ASGITransport(client=...)``) to a chosen local
address (the ``server`` of the scope). The real-process checks are in
``tests/integration/test_remote_serving.py``.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from taskqueue.server.hosts import (
    HostGuardMiddleware,
    ProxyHeadersMiddleware,
    host_allowed,
    host_name,
    parse_allowed_host,
    parse_trusted_proxy,
)

PROXY = "10.0.0.7"


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    headers = dict(scope["headers"])
    body = {
        "client": scope["client"][0] if scope.get("client") else None,
        "scheme": scope["scheme"],
        "host": headers.get(b"host", b"").decode(),
    }
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _call(
    headers: dict[str, str],
    peer: str = PROXY,
    local: str = "10.0.0.1",
    trusted: tuple[str, ...] = (PROXY,),
    allowed: tuple[str, ...] = ("tasks.example.com",),
) -> httpx.Response:
    """One GET through the stack, from ``peer`` to ``local``."""
    guarded = HostGuardMiddleware(_echo, allowed_hosts=allowed)
    proxied = ProxyHeadersMiddleware(guarded, trusted_proxies=trusted)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["server"] = (local, 8080)
        await proxied(scope, receive, send)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            return await client.get("/", headers={"host": "tasks.example.com", **headers})

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        pytest.param("203.0.113.9", "203.0.113.9", id="one-hop"),
        pytest.param("198.51.100.1, 203.0.113.9", "203.0.113.9", id="rightmost-counts"),
        pytest.param("203.0.113.9, 10.0.0.7", "203.0.113.9", id="trusted-hop-skipped"),
        pytest.param("10.0.0.7, 10.0.0.7", "10.0.0.7", id="all-trusted-leftmost"),
        pytest.param("[2001:db8::5]:4711", "2001:db8::5", id="bracketed-with-port"),
        pytest.param("203.0.113.9:4711", "203.0.113.9", id="with-port"),
        pytest.param("unknown", PROXY, id="no-address-peer-kept"),
        pytest.param("", PROXY, id="empty"),
    ],
)
def test_a_trusted_proxy_names_the_client(forwarded_for: str, client: str) -> None:
    answer = _call({"x-forwarded-for": forwarded_for})
    assert answer.status_code == 200, answer.text
    assert answer.json()["client"] == client


def test_several_forwarded_for_headers_are_one_chain() -> None:
    headers = [("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "203.0.113.9")]
    guarded = HostGuardMiddleware(_echo, allowed_hosts=("tasks.example.com",))
    proxied = ProxyHeadersMiddleware(guarded, trusted_proxies=(PROXY,))

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=proxied, client=(PROXY, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://tasks.example.com") as c:
            return await c.get("/", headers=headers)

    assert asyncio.run(go()).json()["client"] == "203.0.113.9"


def test_a_network_of_proxies_is_trusted() -> None:
    answer = _call(
        {"x-forwarded-for": "203.0.113.9, 10.0.0.99"}, peer="10.0.0.3", trusted=("10.0.0.0/24",)
    )
    assert answer.json()["client"] == "203.0.113.9"


@pytest.mark.parametrize("trusted", [(), ("10.0.0.8",), ("192.168.0.0/16",)])
def test_an_untrusted_peer_cannot_claim_another_address_scheme_or_host(
    trusted: tuple[str, ...],
) -> None:
    spoofed = {
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "evil.example",
    }
    answer = _call(spoofed, trusted=trusted)
    assert answer.status_code == 200, answer.text  # the real Host, tasks.example.com, counts
    assert answer.json() == {"client": PROXY, "scheme": "http", "host": "tasks.example.com"}


def test_a_trusted_proxy_sets_scheme_and_host_and_the_forwarded_host_is_checked() -> None:
    answer = _call(
        {"host": "127.0.0.1:8080", "x-forwarded-proto": "http, HTTPS"},
        allowed=("tasks.example.com",),
    )
    assert answer.status_code == 403  # the proxy's own Host is no name the server answers to
    forwarded = {"host": "127.0.0.1:8080", "x-forwarded-host": "tasks.example.com:443"}
    answer = _call({**forwarded, "x-forwarded-proto": "http, HTTPS"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["scheme"] == "https"
    assert answer.json()["host"] == "tasks.example.com:443"
    refused = _call({"host": "tasks.example.com", "x-forwarded-host": "evil.example"})
    assert refused.status_code == 403
    message = refused.json()["error"]["message"]
    assert "'evil.example'" in message
    assert "tasks.example.com" in message
    assert "--allowed-host" in message


def test_an_odd_forwarded_scheme_is_ignored() -> None:
    assert _call({"x-forwarded-proto": "gopher"}).json()["scheme"] == "http"


@pytest.mark.parametrize(
    ("host", "allowed", "local", "answered"),
    [
        ("localhost", (), "127.0.0.1", True),
        ("127.0.0.2", (), "127.0.0.1", True),
        ("::1", (), "::1", True),
        ("evil.example", (), "127.0.0.1", False),
        ("localhost", (), "10.0.0.1", False),  # loopback names only on a loopback connection
        ("localhost", ("tasks.example.com",), "127.0.0.1", True),
        ("tasks.example.com", ("tasks.example.com",), "10.0.0.1", True),
        ("tasks.example.com.evil", ("tasks.example.com",), "10.0.0.1", False),
        ("10.0.0.1", ("0.0.0.0",), "10.0.0.1", True),  # the address it arrived on
        ("10.0.0.2", ("0.0.0.0",), "10.0.0.1", False),
        ("fd00::1", ("::",), "fd00::1", True),
        ("fd00::1", ("0.0.0.0",), "fd00::1", False),
        ("fd00:0::1", ("fd00::1",), "127.0.0.1", True),
        ("anything.example", ("*",), "10.0.0.1", True),
    ],
)
def test_which_hosts_are_answered(
    host: str, allowed: tuple[str, ...], local: str, answered: bool
) -> None:
    assert host_allowed(host, frozenset(allowed), local) is answered


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Tasks.Example.COM:8443", "tasks.example.com"),
        ("tasks.example.com.", "tasks.example.com"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("10.0.0.1:80", "10.0.0.1"),
    ],
)
def test_the_name_of_a_host_header(header: str, name: str) -> None:
    assert host_name(header) == name


def test_allowed_hosts_and_proxies_are_parsed_or_refused_saying_why() -> None:
    assert parse_allowed_host("Tasks.Example.com.") == "tasks.example.com"
    assert parse_allowed_host("[FD00::0001]") == "fd00::1"
    assert parse_allowed_host("*") == "*"
    for bad in ("tasks.example.com:8443", "http://x", "a b", "", "-x.example", "1.2.3"):
        with pytest.raises(ValueError, match="not a host name or address"):
            parse_allowed_host(bad)
    assert parse_trusted_proxy("10.0.0.7") == "10.0.0.7/32"
    assert parse_trusted_proxy("fd00::/64") == "fd00::/64"
    for bad in ("10.0.0.1/24", "proxy.example", "10.0.0.0/33"):
        with pytest.raises(ValueError, match="not an address or network of proxies"):
            parse_trusted_proxy(bad)
