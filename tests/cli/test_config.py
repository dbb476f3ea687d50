"""``taskqueue config ...`` and profiles, in a temp XDG_CONFIG_HOME and working directory."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from taskqueue.cli._context import CliContext
from tests.cli.helpers import assert_one_clear_error, cli, get, names_in, sub_env, tq
from tests.conftest import ServerProcess, free_port

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def user_file(xdg: Path) -> Path:
    return xdg / "taskqueue" / "config.toml"


def shown(text: str) -> dict[str, str]:
    """``config show``'s ``key: value`` lines."""
    values = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return {key: value.split("  (from ", 1)[0] for key, value in values.items()}


def origins(text: str) -> dict[str, str]:
    """Where ``config show`` says each value came from."""
    found = {}
    for line in text.splitlines():
        if "  (from " in line:
            found[line.split(": ", 1)[0]] = line.rsplit("  (from ", 1)[1].rstrip(")")
    return found


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_set_then_show_and_profiles(isolated_config: Path) -> None:
    path = user_file(isolated_config)
    result = cli(None, "config", "set", "base_url", "http://tq.example:9000")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"set base_url in profile default of {path}"
    assert path.exists()
    assert mode(path) == 0o600
    assert tomllib.loads(path.read_text()) == {"default": {"base_url": "http://tq.example:9000"}}

    show = cli(None, "config", "show")
    assert show.exit_code == 0, show.output
    values = shown(show.stdout)
    assert values["base_url"] == "http://tq.example:9000"
    assert values["profile"] == "default"
    assert values["source"] == str(path)
    assert values["api_key"] == "-"

    as_json_out = cli(None, "-o", "json", "config", "show")
    assert as_json_out.exit_code == 0
    data = json.loads(as_json_out.stdout)
    assert data["base_url"] == "http://tq.example:9000"
    assert data["source"] == str(path)
    assert data["files"] == ["taskqueue.toml", str(path)]

    profiles = cli(None, "config", "profiles")
    assert profiles.exit_code == 0, profiles.output
    assert names_in(profiles.stdout, "PROFILE") == ["default"]
    assert names_in(profiles.stdout, "BASE URL") == ["http://tq.example:9000"]
    assert names_in(profiles.stdout, "FILE") == [str(path)]
    as_yaml = cli(None, "--format", "yaml", "config", "profiles")
    assert yaml.safe_load(as_yaml.stdout) == [
        {"file": str(path), "profile": "default", "base_url": "http://tq.example:9000"}
    ]


def test_no_config_at_all(isolated_config: Path) -> None:
    show = cli(None, "config", "show")
    assert show.exit_code == 0
    values = shown(show.stdout)
    assert values["base_url"] == "http://localhost:8080"
    assert values["source"] == "-"
    profiles = cli(None, "config", "profiles")
    assert profiles.exit_code == 0
    assert profiles.stdout.startswith("no profiles")
    assert not user_file(isolated_config).exists()


def test_a_set_profile_is_used_by_commands(live: ServerProcess, isolated_config: Path) -> None:
    set_default = cli(None, "config", "set", "base_url", live.url)
    assert set_default.exit_code == 0
    health = cli(None, "health", "-o", "json")  # no --base-url: the profile says where
    assert health.exit_code == 0, health.output
    assert json.loads(health.stdout)["status"] == "ok"

    # Environment beats the profile.
    elsewhere = f"http://127.0.0.1:{free_port()}"
    show = cli(None, "config", "show", env={"TASKQUEUE_URL": elsewhere})
    assert shown(show.stdout)["base_url"] == elsewhere
    # And --base-url beats both.
    flag = cli("http://flag.example", "config", "show", env={"TASKQUEUE_URL": elsewhere})
    assert shown(flag.stdout)["base_url"] == "http://flag.example"


def test_profile_option_selects_a_named_profile(
    live: ServerProcess, api: httpx.Client, isolated_config: Path
) -> None:
    path = user_file(isolated_config)
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert cli(None, "config", "set", "base_url", unreachable).exit_code == 0
    named = cli(None, "config", "set", "base_url", live.url, "--profile", "staging")
    assert named.exit_code == 0, named.output
    assert "profile staging" in named.stdout
    key = cli(None, "--profile", "staging", "config", "set", "api_key", "tq_secret_key_123")
    assert key.exit_code == 0, key.output
    assert "profile staging" in key.stdout
    assert mode(path) == 0o600
    stored = tomllib.loads(path.read_text())
    assert stored == {
        "default": {"base_url": unreachable},
        "staging": {"base_url": live.url, "api_key": "tq_secret_key_123"},
    }

    show = cli(None, "--profile", "staging", "config", "show")
    values = shown(show.stdout)
    assert values["profile"] == "staging"
    assert values["base_url"] == live.url
    assert values["api_key"] == "tq_s…"  # masked
    assert "secret_key_123" not in show.stdout  # the key, not the secret_key label

    profiles = cli(None, "config", "profiles")
    assert names_in(profiles.stdout, "PROFILE") == ["default", "staging"]
    assert names_in(profiles.stdout, "BASE URL") == [unreachable, live.url]
    as_json_out = cli(None, "-o", "json", "config", "profiles")
    assert "secret" not in as_json_out.stdout
    assert json.loads(as_json_out.stdout)[1]["api_key"] == "…"

    # The named profile reaches the live server; the default one points nowhere.
    made = cli(None, "--profile", "staging", "projects", "create", "cfg-staging", "-o", "json")
    assert made.exit_code == 0, made.output
    assert get(api, f"/api/projects/{json.loads(made.stdout)['id']}")["name"] == "cfg-staging"
    via_env = cli(None, "projects", "get", "cfg-staging", env={"TASKQUEUE_PROFILE": "staging"})
    assert via_env.exit_code == 0, via_env.output
    default = tq("projects", "list")
    assert default.returncode == 4
    assert_one_clear_error(default.stderr, "cannot reach", unreachable)


def test_an_unknown_profile_is_a_usage_error(isolated_config: Path) -> None:
    cli(None, "config", "set", "base_url", "http://x.example")
    show = cli(None, "--profile", "nope", "config", "show")
    assert show.exit_code == 2
    assert_one_clear_error(show.stderr, "profile 'nope'")
    listing = tq("--profile", "nope", "tasks", "list")
    assert listing.returncode == 2
    assert_one_clear_error(listing.stderr, "profile 'nope'")


def test_local_file_in_the_working_directory(isolated_config: Path) -> None:
    result = cli(None, "config", "set", "--local", "base_url", "http://local.example")
    assert result.exit_code == 0, result.output
    local = Path.cwd() / "taskqueue.toml"
    assert local.exists()
    assert mode(local) == 0o600
    assert not user_file(isolated_config).exists()
    values = shown(cli(None, "config", "show").stdout)
    assert values["base_url"] == "http://local.example"
    assert values["source"] == "taskqueue.toml"
    profiles = cli(None, "config", "profiles")
    assert names_in(profiles.stdout, "FILE") == ["taskqueue.toml"]

    # The nearest file wins over the user's for the same profile, as with git.
    cli(None, "config", "set", "base_url", "http://user.example")
    cli(None, "config", "set", "api_key", "user-key-123456")
    show = cli(None, "config", "show").stdout
    assert shown(show)["base_url"] == "http://local.example"
    assert origins(show)["base_url"] == "taskqueue.toml"
    # The profile is taken whole from the nearest file: the user's key is not sent to the
    # server the project's file names.
    assert shown(show)["api_key"] == "-"
    assert cli(None, "config", "set", "--local", "api_key", "local-key-12345").exit_code == 0
    show = cli(None, "config", "show").stdout
    assert shown(show)["api_key"] == "loca…"
    assert origins(show)["api_key"] == "taskqueue.toml"
    as_json = json.loads(cli(None, "-o", "json", "config", "show").stdout)
    assert as_json["origins"]["base_url"] == "taskqueue.toml"


def test_the_nearest_local_file_is_found_from_a_subdirectory(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Path.cwd()
    (project / "taskqueue.toml").write_text('[default]\nbase_url = "http://project.example"\n')
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    show = cli(None, "config", "show").stdout
    assert shown(show)["base_url"] == "http://project.example"
    assert origins(show)["base_url"] == str(project / "taskqueue.toml")
    # --local writes the file it found, not a new one here.
    assert cli(None, "config", "set", "--local", "timeout", "7").exit_code == 0
    assert not (sub / "taskqueue.toml").exists()
    assert "timeout = 7.0" in (project / "taskqueue.toml").read_text()
    env = cli(None, "config", "show", env={"TASKQUEUE_URL": "http://env.example"}).stdout
    assert origins(env)["base_url"] == "TASKQUEUE_URL"
    assert origins(env)["timeout"] == str(project / "taskqueue.toml")


def test_timeout_setting(isolated_config: Path) -> None:
    ok = cli(None, "config", "set", "timeout", "12.5")
    assert ok.exit_code == 0, ok.output
    assert tomllib.loads(user_file(isolated_config).read_text()) == {"default": {"timeout": 12.5}}
    assert shown(cli(None, "config", "show").stdout)["timeout"] == "12.5"
    for bad in ("soon", "0", "-3"):
        result = cli(None, "config", "set", "--", "timeout", bad)
        assert result.exit_code == 2, (bad, result.output)
        assert_one_clear_error(result.stderr, "timeout")
    assert tomllib.loads(user_file(isolated_config).read_text()) == {"default": {"timeout": 12.5}}
    unknown = cli(None, "config", "set", "colour", "blue")
    assert unknown.exit_code == 2
    assert_one_clear_error(unknown.stderr, "'colour' is not one of")


def test_a_broken_config_file_is_a_usage_error(isolated_config: Path) -> None:
    path = user_file(isolated_config)
    path.parent.mkdir(parents=True)
    path.write_text('[default]\nbase_url = "http://x\n', encoding="utf-8")
    show = cli(None, "config", "show")
    assert show.exit_code == 2
    assert_one_clear_error(show.stderr, str(path), "invalid TOML", "line 2")
    listing = tq("tasks", "list")
    assert listing.returncode == 2
    assert_one_clear_error(listing.stderr, str(path), "invalid TOML")
    assert "Traceback" not in listing.stderr
    for args in (["config", "profiles"], ["config", "set", "api_key", "k"]):
        result = cli(None, *args)
        assert result.exit_code == 2, (args, result.output)
        assert_one_clear_error(result.stderr, str(path), "invalid TOML", "line 2")
    assert path.read_text(encoding="utf-8") == '[default]\nbase_url = "http://x\n'  # untouched


def test_an_unreadable_config_file_is_a_usage_error(isolated_config: Path) -> None:
    path = user_file(isolated_config)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'[default]\nbase_url = "\xff"\n')
    for args in (["config", "show"], ["config", "profiles"], ["config", "set", "api_key", "k"]):
        result = cli(None, *args)
        assert result.exit_code == 2, (args, result.output)
        assert_one_clear_error(result.stderr, str(path), "cannot be read")


def test_a_real_process_writes_only_under_the_temp_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    xdg = tmp_path / "xdg-sub"
    work = tmp_path / "work"
    work.mkdir()
    env = sub_env({"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)})
    result = tq("config", "set", "base_url", "http://sub.example", env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    written = xdg / "taskqueue" / "config.toml"
    assert written.exists()
    assert mode(written) == 0o600
    assert list(home.iterdir()) == []
    assert list(work.iterdir()) == []
    show = tq("config", "show", env=env, cwd=work)
    assert shown(show.stdout)["source"] == str(written)

    # Without XDG_CONFIG_HOME the file goes under $HOME/.config.
    plain = {k: v for k, v in env.items() if k != "XDG_CONFIG_HOME"}
    other = tq("config", "set", "base_url", "http://home.example", env=plain, cwd=work)
    assert other.returncode == 0, other.stderr
    assert (home / ".config" / "taskqueue" / "config.toml").exists()


def test_api_key_from_the_option_and_the_environment(isolated_config: Path) -> None:
    flag = cli(None, "--api-key", "tq_from_flag_123", "config", "show")
    assert flag.exit_code == 0
    assert shown(flag.stdout)["api_key"] == "tq_f…"
    assert "from_flag" not in flag.stdout
    env = cli(None, "config", "show", env={"TASKQUEUE_API_KEY": "short"})
    assert shown(env.stdout)["api_key"] == "…"
    as_json_out = cli(
        None, "-o", "json", "config", "show", env={"TASKQUEUE_API_KEY": "tq_0123456789"}
    )
    assert json.loads(as_json_out.stdout)["api_key"] == "tq_0…"


def test_the_cli_retries_quickly_unless_the_environment_says_otherwise(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKQUEUE_RETRY_BACKOFF", raising=False)
    ctx = CliContext(base_url="http://tq.example")
    assert ctx.client.retry.backoff == 0.5  # a person is waiting
    ctx.close()
    monkeypatch.setenv("TASKQUEUE_RETRY_BACKOFF", "2")
    ctx = CliContext(base_url="http://tq.example")
    assert ctx.client.retry.backoff == 2.0
    ctx.close()
