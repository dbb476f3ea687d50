"""Which credentials and CA bundle a client ends up with, and the files it refuses.

Credentials resolve as one group: arguments, then the environment, then the profile, then an
accounts file (``~/.taskqueue/accounts.csv``, else ``./accounts.csv``); a file holding a
secret must be mode 0600. Each test runs in an empty home and working directory.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from taskqueue import (
    AsyncTaskQueueClient,
    TaskQueueClient,
    TaskQueueConfigError,
    TaskQueueConnectionError,
)
from taskqueue.client import resolve_config
from taskqueue.client._connect import tls_context
from taskqueue.client._httpx import HttpxAsyncTransport, HttpxSyncTransport, limits
from taskqueue.client._wire import ConnectError
from tests.sdk.recorder import TLS, Recorder, serving

PAIR = ("tqp_public_one", "tqs_secret_one_0123456789")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home (also ``XDG_CONFIG_HOME``'s parent) and working directory; no variables."""
    for name in (
        "TASKQUEUE_URL",
        "TASKQUEUE_API_KEY",
        "TASKQUEUE_PUBLIC_KEY",
        "TASKQUEUE_SECRET_KEY",
        "TASKQUEUE_PROFILE",
        "TASKQUEUE_ACCOUNT",
        "TASKQUEUE_CA_BUNDLE",
        "SSL_CERT_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    (home / ".config" / "taskqueue").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    work = home / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    """Write ``text`` to ``path`` (its directory made) with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def user_file(home: Path) -> Path:
    return home / ".config" / "taskqueue" / "config.toml"


def user_accounts(home: Path) -> Path:
    return home / ".taskqueue" / "accounts.csv"


PAIR_PROFILE = f'[default]\npublic_key = "{PAIR[0]}"\nsecret_key = "{PAIR[1]}"\n'


# --------------------------------------------------------------------------- the chain


def test_a_key_pair_from_each_level(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private(user_accounts(home), "tqp_acct,tqs_acct\n")
    config = resolve_config()
    assert (config.public_key, config.secret_key) == ("tqp_acct", "tqs_acct")
    assert config.origins["public_key"] == config.origins["secret_key"]
    assert config.origins["public_key"] == f"{user_accounts(home)} line 1"

    private(user_file(home), '[default]\npublic_key = "tqp_file"\nsecret_key = "tqs_file"\n')
    config = resolve_config()
    assert (config.public_key, config.secret_key) == ("tqp_file", "tqs_file")
    assert config.origins["secret_key"] == str(user_file(home))

    monkeypatch.setenv("TASKQUEUE_PUBLIC_KEY", "tqp_env")
    monkeypatch.setenv("TASKQUEUE_SECRET_KEY", "tqs_env")
    config = resolve_config()
    assert (config.public_key, config.secret_key) == ("tqp_env", "tqs_env")
    assert config.origins["public_key"] == "TASKQUEUE_PUBLIC_KEY"
    assert config.origins["secret_key"] == "TASKQUEUE_SECRET_KEY"

    config = resolve_config(public_key="tqp_arg", secret_key="tqs_arg")
    assert (config.public_key, config.secret_key) == ("tqp_arg", "tqs_arg")
    assert config.origins["public_key"] == config.origins["secret_key"] == "argument"
    assert config.api_key is None
    assert config.origins["api_key"] == "default"


def test_the_first_level_with_any_credential_wins_whole(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private(user_file(home), PAIR_PROFILE)
    monkeypatch.setenv("TASKQUEUE_API_KEY", "tq_env_key")
    config = resolve_config()
    # The environment's API key wins, and the profile's pair is not taken alongside.
    assert config.api_key == "tq_env_key"
    assert (config.public_key, config.secret_key) == (None, None)
    assert config.origins["public_key"] == "default"

    config = resolve_config(api_key="tq_arg")
    assert (config.api_key, config.public_key) == ("tq_arg", None)


def test_a_secret_is_never_taken_from_another_level_than_its_public_key(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private(user_file(home), PAIR_PROFILE)
    monkeypatch.setenv("TASKQUEUE_PUBLIC_KEY", "tqp_env")
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    assert caught.value.message == (
        "TASKQUEUE_PUBLIC_KEY is given without TASKQUEUE_SECRET_KEY: a key pair needs both"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"public_key": "tqp_x"}, "the argument public_key= is given without the argument "),
        ({"secret_key": "tqs_x"}, "the argument secret_key= is given without the argument "),
    ],
)
def test_half_a_pair_in_arguments_names_what_is_missing(
    home: Path, arguments: dict[str, str], message: str
) -> None:
    with pytest.raises(TaskQueueConfigError, match=message):
        resolve_config(**arguments)
    with pytest.raises(TaskQueueConfigError, match=message):
        TaskQueueClient(**arguments)


def test_half_a_pair_in_a_profile_names_the_file_and_profile(home: Path) -> None:
    path = private(user_file(home), '[ci]\nsecret_key = "tqs_only"\n')
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config(profile="ci")
    assert caught.value.message == (
        f"secret_key in [ci] of {path} is given without public_key in [ci] of {path}: "
        "a key pair needs both"
    )
    assert "tqs_only" not in caught.value.message


def test_a_key_and_a_pair_at_one_level_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKQUEUE_API_KEY", "tq_key")
    monkeypatch.setenv("TASKQUEUE_PUBLIC_KEY", PAIR[0])
    monkeypatch.setenv("TASKQUEUE_SECRET_KEY", PAIR[1])
    with pytest.raises(TaskQueueConfigError, match=r"TASKQUEUE_API_KEY and a key pair .*keep one"):
        resolve_config()


def test_a_secret_in_the_public_key_s_place_is_refused_before_it_is_sent(home: Path) -> None:
    with pytest.raises(TaskQueueConfigError, match="not a public key id") as caught:
        resolve_config(public_key="tqs_swapped", secret_key="tqp_swapped")
    assert "tqs_swapped" not in caught.value.message


# --------------------------------------------------------------------------- accounts.csv


ACCOUNTS = """\
# seed 004's accounts: public_key,secret_key[,name]
tqp_first , tqs_first

tq_bearer_key,,ci
  tqp_prod,tqs_prod,prod
"""


@pytest.mark.parametrize(
    ("account", "expected", "line"),
    [
        (None, ("tqp_first", "tqs_first", None), 2),
        ("0", ("tqp_first", "tqs_first", None), 2),
        ("2", ("tqp_prod", "tqs_prod", None), 5),
        ("prod", ("tqp_prod", "tqs_prod", None), 5),
        ("ci", (None, None, "tq_bearer_key"), 4),
        ("1", (None, None, "tq_bearer_key"), 4),
    ],
)
def test_an_account_by_index_or_name(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    account: str | None,
    expected: tuple[str | None, ...],
    line: int,
) -> None:
    path = private(user_accounts(home), ACCOUNTS)
    if account is not None:
        monkeypatch.setenv("TASKQUEUE_ACCOUNT", account)
    config = resolve_config()
    assert (config.public_key, config.secret_key, config.api_key) == expected
    used = "api_key" if expected[2] else "public_key"
    assert config.origins[used] == f"{path} line {line}"


def test_the_user_accounts_file_comes_before_the_working_directory_s(home: Path) -> None:
    private(Path("accounts.csv"), "tqp_here,tqs_here\n")
    assert resolve_config().public_key == "tqp_here"
    private(user_accounts(home), "tqp_home,tqs_home\n")
    assert resolve_config().public_key == "tqp_home"


def test_accounts_are_consulted_only_after_the_profile(home: Path) -> None:
    private(Path("accounts.csv"), "tqp_here,tqs_here\n")
    private(user_file(home), '[default]\napi_key = "tq_profile"\n')
    config = resolve_config()
    assert (config.api_key, config.public_key) == ("tq_profile", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tqp_a,tqs_a\na,b,c,d\n", r"line 2: expected public_key,secret_key\[,name\]"),
        (",tqs_a\n", "line 1: expected .*the first empty"),
        ("tqp_lonely\n", "line 1: the public key has no secret_key"),
        ("tqp_lonely,,name\n", "line 1: the public key has no secret_key"),
        ("tqs_swapped,tqp_swapped\n", "line 1: the first field looks like a secret"),
        ("# nothing but a comment\n\n", "holds no account"),
    ],
)
def test_a_malformed_accounts_file_names_the_file_and_line(
    home: Path, text: str, expected: str
) -> None:
    path = private(Path("accounts.csv"), text)
    with pytest.raises(TaskQueueConfigError, match=expected) as caught:
        resolve_config()
    assert caught.value.message.startswith(str(path))
    for secret in ("tqs_a", "tqs_swapped"):
        assert secret not in caught.value.message


def test_an_unknown_account_name_lists_the_names(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = private(user_accounts(home), ACCOUNTS)
    monkeypatch.setenv("TASKQUEUE_ACCOUNT", "staging")
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    assert caught.value.message == (
        f"TASKQUEUE_ACCOUNT='staging': no account of that name in {path} "
        "(names: 'ci', 'prod'; or an index, 0 to 2)"
    )
    assert "tqs_" not in caught.value.message


def test_an_index_out_of_range_says_the_range(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = private(user_accounts(home), ACCOUNTS)
    monkeypatch.setenv("TASKQUEUE_ACCOUNT", "3")
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    assert caught.value.message == (
        f"TASKQUEUE_ACCOUNT=3: {path} has 3 account(s), so the index is 0 to 2"
    )


def test_an_account_asked_for_without_an_accounts_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKQUEUE_ACCOUNT", "prod")
    with pytest.raises(TaskQueueConfigError, match="there is no accounts file"):
        resolve_config()


def test_a_name_on_two_lines_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private(user_accounts(home), "tqp_a,tqs_a,prod\ntqp_b,tqs_b,prod\n")
    monkeypatch.setenv("TASKQUEUE_ACCOUNT", "prod")
    with pytest.raises(TaskQueueConfigError, match="'prod' is on lines 1 and 2"):
        resolve_config()


# --------------------------------------------------------------------------- 0600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
@pytest.mark.parametrize("setting", ["api_key", "secret_key"])
def test_a_profile_file_holding_a_secret_must_be_private(
    home: Path, mode: int, setting: str
) -> None:
    text = f'[default]\n{setting} = "tq_x"\n'
    if setting == "secret_key":
        text += 'public_key = "tqp_x"\n'
    path = private(user_file(home), text, mode)
    with pytest.raises(TaskQueueConfigError) as caught:
        TaskQueueClient()
    assert caught.value.message == (
        f"{path} holds a secret and is readable by others (mode {mode:04o}); run: chmod 600 {path}"
    )
    path.chmod(0o600)
    assert resolve_config().origins[setting] == str(path)


def test_the_project_file_is_checked_too(home: Path) -> None:
    private(Path("taskqueue.toml"), '[default]\napi_key = "tq_x"\n', 0o664)
    with pytest.raises(TaskQueueConfigError, match=r"^taskqueue\.toml holds a secret .*0664"):
        resolve_config()


def test_a_file_without_a_secret_is_not_checked(home: Path) -> None:
    private(user_file(home), '[default]\nbase_url = "http://x:1"\npublic_key = "tqp_x"\n', 0o644)
    with pytest.raises(TaskQueueConfigError, match="without secret_key"):
        resolve_config()  # the public key alone is half a pair, but the file may be read
    private(user_file(home), '[default]\nbase_url = "http://x:1"\n', 0o644)
    assert resolve_config().base_url == "http://x:1"


def test_an_accounts_file_must_be_private(home: Path) -> None:
    path = private(Path("accounts.csv"), "tqp_a,tqs_a\n", 0o644)
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    assert caught.value.message == (
        "accounts.csv holds a secret and is readable by others (mode 0644); "
        "run: chmod 600 accounts.csv"
    )
    assert str(path.name) in caught.value.message


def test_an_accounts_file_is_not_read_when_an_earlier_level_gives_credentials(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private(Path("accounts.csv"), "not, an, accounts, file\n", 0o644)
    monkeypatch.setenv("TASKQUEUE_API_KEY", "tq_env")
    assert resolve_config().api_key == "tq_env"


# --------------------------------------------------------------------------- CA bundle


def test_a_ca_bundle_from_each_level(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = str(TLS / "cert.pem")
    assert resolve_config().ca_bundle is None
    assert resolve_config().origins["ca_bundle"] == "default"
    private(user_file(home), f'[default]\nca_bundle = "{bundle}"\n')
    assert resolve_config().origins["ca_bundle"] == str(user_file(home))
    monkeypatch.setenv("TASKQUEUE_CA_BUNDLE", bundle)
    assert resolve_config().origins["ca_bundle"] == "TASKQUEUE_CA_BUNDLE"
    config = resolve_config(ca_bundle=TLS / "cert.pem")
    assert (config.ca_bundle, config.origins["ca_bundle"]) == (bundle, "argument")


def test_a_ca_bundle_under_home_is_expanded(home: Path) -> None:
    private(home / "ca.pem", (TLS / "cert.pem").read_text())
    private(user_file(home), '[default]\nca_bundle = "~/ca.pem"\n')
    assert resolve_config().ca_bundle == str(home / "ca.pem")


def test_a_missing_ca_bundle_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQUEUE_CA_BUNDLE", "/nonexistent/ca.pem")
    with pytest.raises(TaskQueueConfigError) as caught:
        TaskQueueClient()
    assert caught.value.message == (
        "ca_bundle (from TASKQUEUE_CA_BUNDLE) '/nonexistent/ca.pem' cannot be read: "
        "No such file or directory"
    )
    with pytest.raises(TaskQueueConfigError, match=r"the CA bundle given '/nonexistent/x\.pem'"):
        AsyncTaskQueueClient(ca_bundle="/nonexistent/x.pem")


def test_a_directory_or_unreadable_ca_bundle_is_named(home: Path) -> None:
    with pytest.raises(TaskQueueConfigError, match=f"'{home}' cannot be read: Is a directory"):
        resolve_config(ca_bundle=home)
    if os.geteuid() != 0:  # root reads any file
        locked = private(home / "locked.pem", "x", 0o000)
        with pytest.raises(TaskQueueConfigError, match="cannot be read: Permission denied"):
            resolve_config(ca_bundle=locked)


def test_a_ca_bundle_that_holds_no_certificate_is_named(home: Path) -> None:
    bad = private(home / "not-a-cert.pem", "hello\n")
    for client_class in (TaskQueueClient, AsyncTaskQueueClient):
        with pytest.raises(TaskQueueConfigError) as caught:
            client_class("https://127.0.0.1:1", ca_bundle=bad)
        assert caught.value.message.startswith(f"CA bundle {str(bad)!r} is not a PEM file")


def get_health(kind: str, url: str, **options: Any) -> str:
    """The status ``get_health()`` answers on a new client of ``kind``."""
    if kind == "sync":
        with TaskQueueClient(url, retry_attempts=0, **options) as client:
            return client.get_health().status

    async def main() -> str:
        async with AsyncTaskQueueClient(url, retry_attempts=0, **options) as client:
            return (await client.get_health()).status

    return asyncio.run(main())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_ca_bundle_is_trusted_by_the_clients_own_transports(
    home: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(Recorder(), tls=True) as server:
        with pytest.raises(TaskQueueConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            get_health(kind, server.url)
        assert get_health(kind, server.url, ca_bundle=TLS / "cert.pem") == "ok"
        monkeypatch.setenv("TASKQUEUE_CA_BUNDLE", str(TLS / "cert.pem"))
        assert get_health(kind, server.url, public_key=PAIR[0], secret_key=PAIR[1]) == "ok"
        assert server.headers()["x-taskqueue-key-id"] == PAIR[0]  # signed over TLS too


def test_the_ca_bundle_is_trusted_by_the_httpx_transports(home: Path) -> None:
    # httpx carries requests for HTTP/2 and proxies; its transports get the same context.
    context = tls_context(str(TLS / "cert.pem"))
    with serving(Recorder(), tls=True) as server:
        url = f"{server.url}/api/health"
        sync = HttpxSyncTransport({}, limits(1, 1), http2=False, transport=None)
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            sync.request("GET", url, None, {}, 5.0)
        sync.close()
        sync = HttpxSyncTransport(
            {}, limits(1, 1), http2=False, transport=None, ssl_context=context
        )
        assert sync.request("GET", url, None, {}, 5.0).status_code == 200
        sync.close()

        async def main() -> int:
            transport = HttpxAsyncTransport(
                {}, limits(1, 1), http2=False, transport=None, ssl_context=context
            )
            try:
                return (await transport.request("GET", url, None, {}, 5.0)).status_code
            finally:
                await transport.aclose()

        assert asyncio.run(main()) == 200
