"""Serving beyond loopback, with real server processes: hosts, proxies, TLS, keys required.

* The host guard answers only the names it is given (``--allowed-host``, the environment, or
  the defaults), and says in its 403 which Host it refused, what it answers to and which option
  to use.
* ``X-Forwarded-*`` count only from a ``--trusted-proxy``: the forwarded host is then the one
  checked, the forwarded scheme makes ``https://`` the server's own origin, and the client the
  proxy named is the one whose failed attempts are counted (and logged). From any other peer
  the same headers change nothing: a new X-Forwarded-For on each try escapes no limit.
* ``--host 0.0.0.0`` serves and requires API keys, even before any exists; ``--no-auth`` is
  refused there, and warned about on loopback.
* ``--tls-cert``/``--tls-key`` serve HTTPS that the SDK, the CLI and httpx reach with the CA
  that signed the certificate (made in the test), and that nothing reaches without it; files
  that cannot be used are refused before the port is bound.

These are HTTP-layer checks, so they run on SQLite alone.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from taskqueue.client import TaskQueueClient
from taskqueue.errors import TaskQueueConnectionError
from tests.cli.helpers import sub_env, tq
from tests.conftest import ServerProcess, free_port, wait_until
from tests.tls import make_tls

pytestmark = pytest.mark.sqlite_only

MakeServer = Callable[..., ServerProcess]
PUBLIC = "tasks.example.com"


def _health(server: ServerProcess, **headers: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30, verify=server.verify) as client:
        return client.get("/api/health", headers=headers)


def _refusal(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    return str(response.json()["error"]["message"])


# ------------------------------------------------------------------------------ allowed hosts


def test_on_loopback_only_loopback_names_are_answered(make_server: MakeServer) -> None:
    server = make_server("--workers", "0")
    for host in ("localhost", f"localhost:{server.port}", "127.0.0.1", f"[::1]:{server.port}"):
        assert _health(server, host=host).status_code == 200, host
    message = _refusal(_health(server, host=f"{PUBLIC}:{server.port}"))
    assert f"Host '{PUBLIC}:{server.port}' is not a name this server answers to" in message
    assert "localhost, 127.0.0.1, ::1" in message
    assert "--allowed-host NAME" in message


def test_allowed_hosts_are_answered_and_no_others(make_server: MakeServer) -> None:
    server = make_server("--workers", "0", "--allowed-host", PUBLIC, "--allowed-host", "10.1.2.3")
    for host in (PUBLIC, f"{PUBLIC.upper()}:443", "10.1.2.3:8080", "localhost"):
        assert _health(server, host=host).status_code == 200, host
    for host in (f"{PUBLIC}.evil.example", "evil.example", f"x.{PUBLIC}", "10.1.2.4"):
        message = _refusal(_health(server, host=host))
        assert f"10.1.2.3, {PUBLIC}, localhost" in message, message


def test_allowed_hosts_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ServerProcess(
        db=tmp_path / "env.db", port=free_port(), args=["--workers", "0"], log=tmp_path / "log"
    )
    monkeypatch.setenv("TASKQUEUE_ALLOWED_HOSTS", f" {PUBLIC}, other.example ,")
    server.start()
    try:
        assert _health(server, host="other.example").status_code == 200
        assert _health(server, host=PUBLIC).status_code == 200
        _refusal(_health(server, host="third.example"))
    finally:
        server.stop()


def test_a_wildcard_answers_to_any_host(make_server: MakeServer) -> None:
    server = make_server("--workers", "0", "--allowed-host", "*")
    assert _health(server, host="whatever.example").status_code == 200


def test_bad_allowed_hosts_and_proxies_are_usage_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "never.db")
    for option, value, says in (
        ("--allowed-host", f"{PUBLIC}:8443", "without a port"),
        ("--allowed-host", "http://x.example", "not a host name"),
        ("--trusted-proxy", "10.0.0.1/24", "has host bits set"),
        ("--trusted-proxy", "proxy.example", "not an address or network"),
    ):
        result = tq("server", "--db", db, option, value)
        assert result.returncode == 2, result.stderr
        assert says in result.stderr
        assert option in result.stderr
    assert not Path(db).exists()


# ------------------------------------------------------------------------------------ proxies

FORWARDED = {"x-forwarded-for": "198.51.100.1, 203.0.113.9", "x-forwarded-proto": "https"}


def test_a_trusted_proxy_is_believed(make_server: MakeServer) -> None:
    server = make_server(
        "--workers", "0", "--trusted-proxy", "127.0.0.1", "--allowed-host", PUBLIC,
        "--log-level", "debug",
    )  # fmt: skip
    # The host checked is the forwarded one, whatever the proxy's own Host.
    assert _health(server, **FORWARDED, **{"x-forwarded-host": PUBLIC}).status_code == 200
    message = _refusal(_health(server, **FORWARDED, **{"x-forwarded-host": "evil.example"}))
    assert "'evil.example'" in message
    # The scheme and host the client used make its origin the server's own.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        own = {"origin": f"https://{PUBLIC}", "x-forwarded-host": PUBLIC, **FORWARDED}
        created = client.post("/api/projects", json={"name": "via-proxy"}, headers=own)
        assert created.status_code == 201, created.text
        plain = {**own, "x-forwarded-proto": "http"}
        refused = client.post("/api/projects", json={"name": "other"}, headers=plain)
        assert refused.status_code == 403, refused.text
    # The client is the rightmost hop the proxy did not vouch for.
    assert server.log is not None
    log = server.log
    wait_until(
        lambda: "via proxy 127.0.0.1 from client 203.0.113.9" in log.read_text(),
        10,
        "the server to log the forwarded client",
    )


def test_an_untrusted_peer_is_not_believed(make_server: MakeServer) -> None:
    server = make_server(
        "--workers", "0", "--trusted-proxy", "10.9.9.9", "--allowed-host", PUBLIC,
        "--log-level", "debug",
    )  # fmt: skip
    # A spoofed X-Forwarded-Host neither lets an unknown Host in nor shuts a known one out.
    _refusal(_health(server, host="evil.example", **{"x-forwarded-host": PUBLIC}))
    assert _health(server, host=PUBLIC, **{"x-forwarded-host": "evil.example"}).status_code == 200
    with httpx.Client(base_url=server.url, timeout=30) as client:
        spoofed = {"origin": f"https://{PUBLIC}", "x-forwarded-host": PUBLIC, **FORWARDED}
        refused = client.post("/api/projects", json={"name": "spoofed"}, headers=spoofed)
        assert refused.status_code == 403, refused.text
        assert "Origin" in refused.json()["error"]["message"]
        for _ in range(3):
            assert client.get("/api/health", headers=FORWARDED).status_code == 200
    assert server.log is not None
    assert "from client" not in server.log.read_text()


# ---------------------------------------------------------------------------- beyond loopback


def _admin_key(db: Path | str) -> str:
    made = tq("keys", "create", "--admin", "--name", "remote", "--db", str(db))
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_every_address_is_served_with_keys_required(make_server: MakeServer) -> None:
    # The key made below is refused until the server's key ring has read it: its polls may
    # fail more often than one address may by default.
    server = make_server("--workers", "0", "--host", "0.0.0.0", "--failed-auth-burst", "100000")
    assert server.log is not None
    banner = server.log.read_text()
    hostname = socket.gethostname()
    assert f"serving http://{hostname}:{server.port} " in banner, banner
    assert "API key: every request needs one" in banner
    # Answered by the address it was sent to and by the machine's hostname; nothing else.
    for host in (f"127.0.0.1:{server.port}", hostname, "localhost"):
        assert _health(server, host=host).status_code == 200, host
    message = _refusal(_health(server, host="evil.example"))
    assert f"{hostname}, the address the request was sent to" in message
    # Keys are required although the database has none yet: no request gets past without one.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/api/tasks").status_code == 401
        key = _admin_key(server.db)
        with_key = {"authorization": f"Bearer {key}"}
        wait_until(
            lambda: client.get("/api/tasks", headers=with_key).status_code == 200,
            30,
            "the server to accept the key made on its database",
        )


def _failures_until_limited(server: ServerProcess, clients: list[str]) -> list[int]:
    """Statuses of keyless requests, each forwarded for the next of ``clients``."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return [
            client.get("/api/tasks", headers={"x-forwarded-for": address}).status_code
            for address in clients
        ]


def test_failed_attempts_are_limited_per_forwarded_client(make_server: MakeServer) -> None:
    """Through a trusted proxy, each client has its own limit of failed attempts."""
    server = make_server("--workers", "0", "--host", "0.0.0.0", "--trusted-proxy", "127.0.0.1")
    statuses = _failures_until_limited(server, ["203.0.113.9"] * 11)
    assert statuses == [401] * 10 + [429], statuses
    assert _failures_until_limited(server, ["198.51.100.1"]) == [401]
    assert server.log is not None
    log = server.log.read_text()
    assert "refused GET /api/tasks from 203.0.113.9: missing key" in log
    assert "refused GET /api/tasks from 198.51.100.1: missing key" in log


def test_a_spoofed_forwarded_for_does_not_escape_the_limit(make_server: MakeServer) -> None:
    """From a peer that is no trusted proxy, a new X-Forwarded-For each time changes nothing."""
    server = make_server("--workers", "0", "--host", "0.0.0.0", "--trusted-proxy", "10.9.9.9")
    statuses = _failures_until_limited(server, [f"203.0.113.{i}" for i in range(11)])
    assert statuses == [401] * 10 + [429], statuses
    assert server.log is not None
    log = server.log.read_text()
    assert "refused GET /api/tasks from 127.0.0.1: missing key" in log
    assert "203.0.113." not in log


def test_no_auth_is_refused_beyond_loopback_and_warned_about_on_it(
    tmp_path: Path, make_server: MakeServer
) -> None:
    for host in ("0.0.0.0", "::", "10.1.2.3"):
        refused = tq("server", "--db", str(tmp_path / "never.db"), "--host", host, "--no-auth")
        assert refused.returncode == 2, refused.stderr
        assert f"--no-auth is refused with --host {host}" in refused.stderr
    assert not (tmp_path / "never.db").exists()
    server = make_server("--workers", "0", "--no-auth")
    assert _health(server).status_code == 200
    assert server.log is not None
    log = server.log.read_text()
    assert "warning: --no-auth: API keys are off; anyone on this machine" in log
    assert log.index("warning: --no-auth") < log.index("serving http://")


# ---------------------------------------------------------------------------------------- TLS


def test_https_is_reached_with_the_ca_and_refused_without(
    tmp_path: Path, make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = make_tls(tmp_path / "tls", ["localhost", "127.0.0.1"])
    server = make_server(
        "--workers", "0", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key),
        scheme="https", verify=tls.context(),
    )  # fmt: skip
    assert server.log is not None
    assert f"serving https://127.0.0.1:{server.port} " in server.log.read_text()
    assert _health(server).json()["status"] == "ok"
    # Without the CA, nothing that checks certificates gets an answer.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{server.url}/api/health", timeout=10)
    with TaskQueueClient(base_url=server.url, retry_attempts=0) as client:
        with pytest.raises(TaskQueueConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get_health()
    refused = tq("health", url=server.url)
    assert refused.returncode == 4, refused.stderr
    assert "certificate" in refused.stderr.lower()
    # Plain HTTP on the TLS port is no way in either.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.port}/api/health", timeout=10)
    # With the CA (SSL_CERT_FILE, which the SDK's default context reads), SDK and CLI work.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    with TaskQueueClient(base_url=server.url) as client:
        assert client.get_health().status == "ok"
        made = client.create_project(name="over-tls")
        assert client.get_project(made.id).name == "over-tls"
    by_name = f"https://localhost:{server.port}"
    reached = tq("health", url=by_name, env=sub_env({"SSL_CERT_FILE": str(tls.ca)}))
    assert reached.returncode == 0, reached.stderr
    # The certificate names localhost and 127.0.0.1, and is checked for the name asked for.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            tls.context().wrap_socket(raw, server_hostname="other.example")


def test_unusable_tls_files_are_refused_before_listening(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "a", ["localhost"])
    stranger = make_tls(tmp_path / "b", ["localhost"])
    db = str(tmp_path / "never.db")
    port = free_port()
    for args, says in (
        (["--tls-cert", str(tls.cert)], "--tls-cert needs --tls-key"),
        (["--tls-key", str(tls.key)], "--tls-key needs --tls-cert"),
        (["--tls-cert", str(tls.cert), "--tls-key", str(stranger.key)], "not the certificate's"),
        (["--tls-cert", str(tls.key), "--tls-key", str(tls.key)], "does not hold a PEM cert"),
        (["--tls-cert", str(tls.cert), "--tls-key", str(tmp_path / "no.key")], "cannot read"),
    ):
        result = tq("server", "--db", db, "--port", str(port), *args)
        assert result.returncode == 2, result.stderr
        assert says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not Path(db).exists()
    with socket.create_server(("127.0.0.1", port)):
        pass  # the port was never taken
