"""The CLI's credentials: ``--api-key-file``, the warning of ``--api-key``, ``--ca-bundle``,
and what ``config show`` says of a key pair (its public id and origin, never its secret)."""

from __future__ import annotations

import json
from pathlib import Path

from taskqueue.cli._options import ARGV_KEY_WARNING
from tests.cli.helpers import assert_one_clear_error, cli, sub_env, tq
from tests.cli.test_config import origins, shown
from tests.sdk.recorder import TLS, Recorder, serving

KEY = "tq_from_a_file_0123456789"


def key_file(path: Path, mode: int = 0o600, text: str = f"{KEY}\n") -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_the_api_key_is_read_from_a_private_file(tmp_path: Path) -> None:
    path = key_file(tmp_path / "key")
    with serving(Recorder()) as server:
        result = cli(server.url, "--api-key-file", str(path), "health")
        assert result.exit_code == 0, result.output
        assert server.headers()["authorization"] == f"Bearer {KEY}"
    assert result.stderr == ""  # no warning: the key was on no command line
    show = cli(None, "--api-key-file", str(path), "config", "show")
    assert shown(show.stdout)["api_key"] == "tq_f…"
    assert origins(show.stdout)["api_key"] == "argument"
    assert KEY not in show.output


def test_the_api_key_is_read_from_standard_input(tmp_path: Path) -> None:
    with serving(Recorder()) as server:
        result = cli(server.url, "--api-key-file", "-", "health", input=f"{KEY}\n")
        assert result.exit_code == 0, result.output
        assert server.headers()["authorization"] == f"Bearer {KEY}"
        # A real process, its standard input a pipe.
        real = tq("--api-key-file", "-", "health", url=server.url, input=KEY)
        assert real.returncode == 0, real.stderr
        assert server.headers()["authorization"] == f"Bearer {KEY}"


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path / "key", 0o644)
    result = cli("http://127.0.0.1:9", "--api-key-file", str(path), "health")
    assert result.exit_code == 2
    line = assert_one_clear_error(result.stderr, "--api-key-file")
    assert line.endswith(
        f"{path} holds a secret and is readable by others (mode 0644); run: chmod 600 {path}"
    )
    assert KEY not in result.output


def test_a_missing_empty_or_many_line_key_file_is_a_usage_error(tmp_path: Path) -> None:
    cases = {
        str(tmp_path / "nope"): "No such file or directory",
        str(key_file(tmp_path / "empty", text="\n")): "is empty",
        str(key_file(tmp_path / "two", text="tq_a\ntq_b\n")): "more than one line",
    }
    for path, expected in cases.items():
        result = cli(None, "--api-key-file", path, "config", "show")
        assert result.exit_code == 2, result.output
        assert_one_clear_error(result.stderr, expected)
    empty = cli(None, "--api-key-file", "-", "config", "show", input="")
    assert empty.exit_code == 2
    assert_one_clear_error(empty.stderr, "standard input is empty")


def test_a_key_on_the_command_line_works_but_warns(tmp_path: Path) -> None:
    with serving(Recorder()) as server:
        result = cli(server.url, "--api-key", "tq_on_argv_123", "health")
        assert result.exit_code == 0, result.output
        assert server.headers()["authorization"] == "Bearer tq_on_argv_123"
    assert result.stderr.splitlines() == [ARGV_KEY_WARNING]
    assert "ps" in ARGV_KEY_WARNING
    assert "TASKQUEUE_API_KEY" in ARGV_KEY_WARNING
    assert "--api-key-file" in ARGV_KEY_WARNING


def test_the_key_is_given_once(tmp_path: Path) -> None:
    path = key_file(tmp_path / "key")
    result = cli(None, "--api-key", "tq_x", "--api-key-file", str(path), "config", "show")
    assert result.exit_code == 2
    assert_one_clear_error(result.stderr, "--api-key or --api-key-file, not both")


def test_the_ca_bundle_option_is_trusted(tmp_path: Path) -> None:
    with serving(Recorder(), tls=True) as server:
        untrusted = cli(server.url, "health")
        assert untrusted.exit_code == 4
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        trusted = cli(server.url, "--ca-bundle", str(TLS / "cert.pem"), "health")
        assert trusted.exit_code == 0, trusted.output
    show = cli(None, "--ca-bundle", str(TLS / "cert.pem"), "config", "show")
    assert shown(show.stdout)["ca_bundle"] == str(TLS / "cert.pem")
    assert origins(show.stdout)["ca_bundle"] == "argument"
    missing = cli(None, "--ca-bundle", str(tmp_path / "none.pem"), "health")
    assert missing.exit_code == 2
    assert_one_clear_error(missing.stderr, "none.pem", "cannot be read")


def test_config_show_names_the_public_key_and_hides_the_secret(
    isolated_config: Path, tmp_path: Path
) -> None:
    env = {"TASKQUEUE_PUBLIC_KEY": "tqp_shown_id", "TASKQUEUE_SECRET_KEY": "tqs_hidden_0123456789"}
    show = cli(None, "config", "show", env=env)
    assert show.exit_code == 0, show.output
    assert shown(show.stdout)["public_key"] == "tqp_shown_id"
    assert shown(show.stdout)["secret_key"] == "tqs_…"
    assert origins(show.stdout)["public_key"] == "TASKQUEUE_PUBLIC_KEY"
    assert origins(show.stdout)["secret_key"] == "TASKQUEUE_SECRET_KEY"
    as_json = cli(None, "-o", "json", "config", "show", env=env)
    data = json.loads(as_json.stdout)
    assert (data["public_key"], data["secret_key"]) == ("tqp_shown_id", "tqs_…")
    assert "hidden_0123" not in show.output + as_json.output

    accounts = tmp_path / ".taskqueue" / "accounts.csv"  # HOME is tmp_path
    accounts.parent.mkdir()
    key_file(accounts, text="tqp_acct,tqs_acct_secret_0123,ci\n")
    from_file = cli(None, "config", "show")
    assert shown(from_file.stdout)["public_key"] == "tqp_acct"
    assert origins(from_file.stdout)["secret_key"] == f"{accounts} line 1"
    assert "acct_secret" not in from_file.output
    accounts.chmod(0o644)
    refused = cli(None, "config", "show")
    assert refused.exit_code == 2
    assert_one_clear_error(refused.stderr, "chmod 600")


def test_config_profiles_hides_a_profile_s_secret(isolated_config: Path) -> None:
    path = isolated_config / "taskqueue" / "config.toml"
    path.parent.mkdir()
    key_file(path, text='[ci]\npublic_key = "tqp_p"\nsecret_key = "tqs_profile_secret_1"\n')
    result = cli(None, "-o", "json", "config", "profiles")
    assert json.loads(result.stdout)[0]["secret_key"] == "…"
    assert "profile_secret" not in result.output


def test_config_set_takes_a_public_key_and_a_ca_bundle_but_no_secret(
    isolated_config: Path,
) -> None:
    assert cli(None, "config", "set", "public_key", "tqp_set").exit_code == 0
    assert cli(None, "config", "set", "ca_bundle", str(TLS / "cert.pem")).exit_code == 0
    refused = cli(None, "config", "set", "secret_key", "tqs_on_argv")
    assert refused.exit_code == 2
    # The public key alone is half a pair: commands say so until the secret is added.
    half = tq("health", env=sub_env({"XDG_CONFIG_HOME": str(isolated_config)}))
    assert half.returncode == 2
    assert "without secret_key" in half.stderr
