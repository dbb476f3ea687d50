"""Where the clients find their server, key and timeout: arguments, env, then config files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from taskqueue import AsyncTaskQueueClient, TaskQueueClient, TaskQueueConfigError
from taskqueue.client import resolve_config
from taskqueue.client._config import DEFAULT_BASE_URL
from tests.sdk.recorder import Recorder


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty environment: a temp ``XDG_CONFIG_HOME``, a temp cwd, no ``TASKQUEUE_*``."""
    for name in (
        "TASKQUEUE_URL",
        "TASKQUEUE_API_KEY",
        "TASKQUEUE_PROFILE",
        "TASKQUEUE_RETRY_BACKOFF",
        "TASKQUEUE_PUBLIC_KEY",
        "TASKQUEUE_SECRET_KEY",
        "TASKQUEUE_CA_BUNDLE",
        "TASKQUEUE_ACCOUNT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.taskqueue/accounts.csv of the real user
    xdg = tmp_path / "xdg"
    (xdg / "taskqueue").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    cwd = tmp_path / "project"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return xdg / "taskqueue"


@pytest.fixture
def user_config(user_dir: Path) -> Path:
    return user_dir / "config.toml"


@pytest.fixture
def local_config(user_dir: Path) -> Path:
    return Path.cwd() / "taskqueue.toml"


def write(path: Path, text: str) -> Path:
    """Write a config file, private to its owner as a file holding a key must be."""
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- the chain


def test_default_when_nothing_is_set(user_dir: Path) -> None:
    config = resolve_config()
    assert config.base_url == DEFAULT_BASE_URL == "http://localhost:8080"
    assert config.api_key is None
    assert config.timeout is None
    assert config.profile == "default"
    assert config.source is None


def test_local_file_beats_default(local_config: Path) -> None:
    write(local_config, '[default]\nbase_url = "http://local:1"\napi_key = "local-key"\n')
    config = resolve_config()
    assert config.base_url == "http://local:1"
    assert config.api_key == "local-key"
    assert config.source == "taskqueue.toml"


def test_local_file_beats_user_file(user_config: Path, local_config: Path) -> None:
    write(local_config, '[default]\nbase_url = "http://local:1"\napi_key = "local-key"\n')
    write(user_config, '[default]\nbase_url = "http://user:2"\napi_key = "user-key"\n')
    config = resolve_config()
    assert config.base_url == "http://local:1"
    assert config.api_key == "local-key"
    assert config.source == "taskqueue.toml"
    assert config.origins["base_url"] == "taskqueue.toml"


def test_user_profile_is_used_when_the_local_file_lacks_it(
    user_config: Path, local_config: Path
) -> None:
    write(local_config, '[other]\nbase_url = "http://local:1"\n')
    write(user_config, '[default]\nbase_url = "http://user:2"\napi_key = "user-key"\n')
    config = resolve_config()
    assert (config.base_url, config.api_key) == ("http://user:2", "user-key")
    assert config.origins == {
        "base_url": str(user_config),
        "api_key": str(user_config),
        "public_key": "default",
        "secret_key": "default",
        "timeout": "default",
        "ca_bundle": "default",
        "retry_backoff": "default",
    }


def test_env_beats_user_file(
    user_config: Path, local_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(local_config, '[default]\nbase_url = "http://local:1"\napi_key = "local-key"\n')
    write(user_config, '[default]\nbase_url = "http://user:2"\napi_key = "user-key"\n')
    monkeypatch.setenv("TASKQUEUE_URL", "http://env:3")
    monkeypatch.setenv("TASKQUEUE_API_KEY", "env-key")
    config = resolve_config()
    assert config.base_url == "http://env:3"
    assert config.api_key == "env-key"


def test_argument_beats_env(user_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(user_config, '[default]\nbase_url = "http://user:2"\napi_key = "user-key"\n')
    monkeypatch.setenv("TASKQUEUE_URL", "http://env:3")
    monkeypatch.setenv("TASKQUEUE_API_KEY", "env-key")
    config = resolve_config("http://arg:4", "arg-key")
    assert config.base_url == "http://arg:4"
    assert config.api_key == "arg-key"


def test_settings_resolve_one_by_one(user_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(user_config, '[default]\nbase_url = "http://user:2"\napi_key = "user-key"\n')
    monkeypatch.setenv("TASKQUEUE_API_KEY", "env-key")
    config = resolve_config()
    assert config.base_url == "http://user:2"  # from the file
    assert config.api_key == "env-key"  # from the environment
    config = resolve_config(base_url="http://arg:4")
    assert (config.base_url, config.api_key) == ("http://arg:4", "env-key")


def test_explicit_environ_mapping_is_used_instead_of_os_environ(
    user_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKQUEUE_URL", "http://os-env:1")
    other = tmp_path / "other-xdg"
    (other / "taskqueue").mkdir(parents=True)
    write(other / "taskqueue" / "config.toml", '[default]\nbase_url = "http://other:5"\n')
    config = resolve_config(environ={"XDG_CONFIG_HOME": str(other)})
    assert config.base_url == "http://other:5"


def test_retry_backoff_from_argument_then_env_then_default(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_config().retry_backoff == 1.0
    with TaskQueueClient() as client:
        assert client.retry.backoff == 1.0
    monkeypatch.setenv("TASKQUEUE_RETRY_BACKOFF", "0.25")
    assert resolve_config().retry_backoff == 0.25
    assert resolve_config(retry_backoff=3.0).retry_backoff == 3.0
    with TaskQueueClient() as client:
        assert client.retry.backoff == 0.25
    with TaskQueueClient(retry_backoff=2.0) as client:
        assert client.retry.backoff == 2.0

    async def check() -> None:
        async with AsyncTaskQueueClient() as client:
            assert client.retry.backoff == 0.25

    asyncio.run(check())
    monkeypatch.setenv("TASKQUEUE_RETRY_BACKOFF", "0")
    assert resolve_config().retry_backoff == 0.0  # retries without waiting
    monkeypatch.setenv("TASKQUEUE_RETRY_BACKOFF", "")
    assert resolve_config().retry_backoff == 1.0  # empty is unset, as for the other variables


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_impossible_retry_backoff_names_the_variable(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TASKQUEUE_RETRY_BACKOFF", value)
    with pytest.raises(TaskQueueConfigError, match=f"TASKQUEUE_RETRY_BACKOFF .*{value!r}"):
        resolve_config()
    with pytest.raises(TaskQueueConfigError, match="TASKQUEUE_RETRY_BACKOFF"):
        TaskQueueClient()
    assert resolve_config(retry_backoff=0.5).retry_backoff == 0.5  # an argument wins


# --------------------------------------------------------------------------- profiles


PROFILES = """\
[default]
base_url = "http://default:1"

[prod]
base_url = "https://tq.example.com/"
api_key = "tq_prod"
timeout = 12.5
"""


def test_profile_from_env(user_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(user_config, PROFILES)
    assert resolve_config().base_url == "http://default:1"
    monkeypatch.setenv("TASKQUEUE_PROFILE", "prod")
    config = resolve_config()
    assert config.profile == "prod"
    assert config.base_url == "https://tq.example.com"
    assert config.api_key == "tq_prod"
    assert config.timeout == 12.5


def test_profile_argument_beats_env(user_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(user_config, PROFILES)
    monkeypatch.setenv("TASKQUEUE_PROFILE", "prod")
    config = resolve_config(profile="default")
    assert config.profile == "default"
    assert config.base_url == "http://default:1"
    assert resolve_config(profile="prod").api_key == "tq_prod"


def test_profile_found_in_local_file_when_not_in_user_file(
    user_config: Path, local_config: Path
) -> None:
    write(user_config, '[default]\nbase_url = "http://user:2"\n')
    write(local_config, '[staging]\nbase_url = "http://staging:6"\n')
    config = resolve_config(profile="staging")
    assert config.base_url == "http://staging:6"
    assert config.source == "taskqueue.toml"


def test_unknown_profile_argument_is_an_error(user_config: Path) -> None:
    write(user_config, PROFILES)
    with pytest.raises(TaskQueueConfigError, match="'nope'") as caught:
        resolve_config(profile="nope")
    assert str(user_config) in str(caught.value)


def test_unknown_profile_from_env_is_an_error(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKQUEUE_PROFILE", "nope")
    with pytest.raises(TaskQueueConfigError, match="'nope'"):
        resolve_config()
    with pytest.raises(TaskQueueConfigError, match="'nope'"):
        TaskQueueClient()  # the constructor fails before any client exists


def test_missing_default_profile_is_not_an_error(user_config: Path) -> None:
    write(user_config, '[prod]\nbase_url = "http://prod:7"\n')
    assert resolve_config().base_url == DEFAULT_BASE_URL
    assert resolve_config(profile="default").base_url == DEFAULT_BASE_URL


# --------------------------------------------------------------------------- bad files


def test_malformed_user_file_names_file_and_line(user_config: Path) -> None:
    write(user_config, '[default]\nbase_url = "http://x"\napi_key = \n')
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    message = str(caught.value)
    assert str(user_config) in message
    assert "line 3" in message


def test_malformed_local_file_names_file_and_line(local_config: Path) -> None:
    write(local_config, '\n\n[default\nbase_url = "http://x"\n')
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    message = str(caught.value)
    assert "taskqueue.toml" in message
    assert "line 3" in message


def test_malformed_file_fails_the_client_constructors(user_config: Path) -> None:
    write(user_config, "[default]\nbase_url = = 1\n")
    with pytest.raises(TaskQueueConfigError, match="line 2"):
        TaskQueueClient()
    with pytest.raises(TaskQueueConfigError, match="line 2"):
        AsyncTaskQueueClient()


def test_unknown_key_names_file_and_key(user_config: Path) -> None:
    write(user_config, '[default]\nbase_url = "http://x"\nurl = "http://typo"\n')
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    message = str(caught.value)
    assert str(user_config) in message
    assert "'url'" in message


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("base_url = 8080", "base_url"),
        ('api_key = ["a", "b"]', "api_key"),
        ('timeout = "30"', "timeout"),
        ("timeout = true", "timeout"),
    ],
)
def test_wrong_type_names_file_and_key(user_config: Path, line: str, key: str) -> None:
    write(user_config, f"[default]\n{line}\n")
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    message = str(caught.value)
    assert str(user_config) in message
    assert key in message


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_impossible_timeout_names_file(user_config: Path, value: str) -> None:
    # Accepted as is, it would surface later as httpx's bare ValueError on the first request.
    write(user_config, f"[default]\ntimeout = {value}\n")
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    message = str(caught.value)
    assert str(user_config) in message
    assert "timeout" in message


def test_profile_that_is_not_a_table(local_config: Path) -> None:
    write(local_config, 'default = "http://x"\n')
    with pytest.raises(TaskQueueConfigError, match=r"taskqueue\.toml.*\[default\]"):
        resolve_config()


def test_unreadable_file_names_file(user_config: Path) -> None:
    user_config.write_bytes(b'[default]\nbase_url = "\xff"\n')
    with pytest.raises(TaskQueueConfigError) as caught:
        resolve_config()
    assert str(user_config) in str(caught.value)


def test_only_the_profile_in_use_is_checked(user_config: Path) -> None:
    write(user_config, '[default]\nbase_url = "http://ok:1"\n\n[other]\nbad_key = 1\n')
    assert resolve_config().base_url == "http://ok:1"
    with pytest.raises(TaskQueueConfigError, match="bad_key"):
        resolve_config(profile="other")


# --------------------------------------------------------------------------- the clients


def test_sync_client_uses_resolved_settings(user_config: Path) -> None:
    write(user_config, PROFILES)
    with TaskQueueClient(profile="prod") as client:
        assert client.base_url == "https://tq.example.com"
        assert client.api_key == "tq_prod"
        assert client.timeout == 12.5


def test_async_client_uses_resolved_settings(user_config: Path) -> None:
    write(user_config, PROFILES)

    async def check() -> None:
        async with AsyncTaskQueueClient(profile="prod") as client:
            assert client.base_url == "https://tq.example.com"
            assert client.api_key == "tq_prod"
            assert client.timeout == 12.5

    asyncio.run(check())


def sent_headers(client_class: type, recorder: Recorder, **options: Any) -> dict[str, str]:
    """The headers one ``get_health()`` of a client made with ``options`` sent."""
    if client_class is TaskQueueClient:
        with TaskQueueClient(recorder.url, **options) as client:
            client.get_health()
    else:

        async def call() -> None:
            async with AsyncTaskQueueClient(recorder.url, **options) as client:
                await client.get_health()

        asyncio.run(call())
    return recorder.headers()


CLIENTS = pytest.mark.parametrize(
    "client_class", [TaskQueueClient, AsyncTaskQueueClient], ids=["sync", "async"]
)


@CLIENTS
def test_api_key_argument_becomes_bearer_header(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder, client_class: type
) -> None:
    monkeypatch.setenv("TASKQUEUE_API_KEY", "env-key")
    with TaskQueueClient(api_key="arg-key") as client:
        assert client.api_key == "arg-key"
    assert sent_headers(client_class, recorder, api_key="arg-key")["authorization"] == (
        "Bearer arg-key"
    )
    assert sent_headers(client_class, recorder)["authorization"] == "Bearer env-key"


@CLIENTS
def test_the_key_goes_in_x_api_key_when_asked(
    user_dir: Path, recorder: Recorder, client_class: type
) -> None:
    headers = sent_headers(client_class, recorder, api_key="k1", api_key_header="X-API-Key")
    assert headers["x-api-key"] == "k1"
    assert "authorization" not in headers
    with pytest.raises(TaskQueueConfigError, match="api_key_header"):
        client_class(recorder.url, api_key="k", api_key_header="X-Token")


@CLIENTS
def test_no_api_key_means_no_authorization_header(
    user_dir: Path, recorder: Recorder, client_class: type
) -> None:
    with TaskQueueClient() as client:
        assert client.api_key is None
    headers = sent_headers(client_class, recorder)
    assert "authorization" not in headers
    assert "x-api-key" not in headers
    assert headers["user-agent"].startswith("taskqueue-python/")
    assert headers["accept"] == "application/json"


@pytest.mark.parametrize(
    "given", ["http://tq.local:9000/", "http://tq.local:9000//", "http://tq.local:9000"]
)
def test_trailing_slash_is_dropped(user_dir: Path, given: str) -> None:
    assert resolve_config(given).base_url == "http://tq.local:9000"
    with TaskQueueClient(given) as client:
        assert client.base_url == "http://tq.local:9000"


def test_trailing_slash_from_env_and_file_is_dropped(
    user_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(user_config, '[default]\nbase_url = "http://file:1/"\n')
    assert resolve_config().base_url == "http://file:1"
    monkeypatch.setenv("TASKQUEUE_URL", "http://env:2/")
    with TaskQueueClient() as client:
        assert client.base_url == "http://env:2"


def test_default_timeout_without_config(user_dir: Path) -> None:
    with TaskQueueClient() as client:
        assert client.timeout == 30.0


def test_config_timeout_used_only_without_timeout_argument(local_config: Path) -> None:
    write(local_config, "[default]\ntimeout = 7\n")
    assert resolve_config().timeout == 7.0
    with TaskQueueClient() as client:
        assert client.timeout == 7.0
    with TaskQueueClient(timeout=2.5) as client:
        assert client.timeout == 2.5
    with TaskQueueClient(timeout=None) as client:  # None: no timeout at all
        assert client.timeout is None


@CLIENTS
def test_custom_headers_are_sent_with_the_key(
    user_dir: Path, recorder: Recorder, client_class: type
) -> None:
    headers = sent_headers(client_class, recorder, api_key="k", headers={"X-Team": "data"})
    assert headers["x-team"] == "data"
    assert headers["authorization"] == "Bearer k"
