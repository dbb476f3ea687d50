"""The limits' pure parts: operator options, the policy, the shell prelude, naming a failure."""

from __future__ import annotations

import signal

import pytest

from taskqueue._limits import LimitPolicy, TaskLimits, parse_limit
from taskqueue.models import FailureReason
from taskqueue.worker.limits import limit_failure, limits_prelude


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("cpu_seconds=10", ("cpu_seconds", 10)),
        ("memory_bytes=2G", ("memory_bytes", 2 * 2**30)),
        ("file-size-bytes=512k", ("file_size_bytes", 512 * 1024)),
        ("open_files=64", ("open_files", 64)),
    ],
)
def test_operator_limits_parse(text: str, parsed: tuple[str, int]) -> None:
    assert parse_limit(text) == parsed


@pytest.mark.parametrize(
    "text", ["cpu_seconds", "disk=1", "cpu_seconds=1.5", "cpu_seconds=0", "processes=2G", "x=1"]
)
def test_bad_operator_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"NAME=VALUE|whole number|out of bounds"):
        parse_limit(text)


def test_the_policy_fills_defaults_then_maxima_and_lowers_what_is_above() -> None:
    policy = LimitPolicy(
        defaults={"cpu_seconds": 10}, maxima={"cpu_seconds": 60, "open_files": 100}
    )
    assert policy.effective(None) == {"cpu_seconds": 10, "open_files": 100}
    asked = {"cpu_seconds": 90, "network": False}
    assert policy.effective(asked) == {"cpu_seconds": 60, "open_files": 100, "network": False}
    assert policy.over_maxima(TaskLimits(cpu_seconds=61)) == [("cpu_seconds", 61, 60)]
    assert policy.over_maxima(TaskLimits(cpu_seconds=60)) == []
    assert LimitPolicy().effective({"processes": 5}) == {"processes": 5}


def test_only_the_limits_asked_for_are_stored() -> None:
    assert TaskLimits().stored() == {}
    assert TaskLimits(network=False, open_files=9).stored() == {"open_files": 9, "network": False}


def test_the_prelude_sets_soft_before_hard_and_converts_units() -> None:
    assert limits_prelude({}) == ""
    prelude = limits_prelude(
        {"cpu_seconds": 5, "memory_bytes": 2**20 + 5, "file_size_bytes": 1000, "processes": 3}
    )
    steps = prelude.split(" || ")[0].split(" && ")
    assert steps == [
        "ulimit -S -t 5",
        "ulimit -H -t 6",
        "ulimit -v 1024",
        "ulimit -f 1",
        "ulimit -p 3",
    ]


@pytest.mark.parametrize(
    ("limits", "exit_code", "cpu", "stderr", "reason"),
    [
        ({"cpu_seconds": 1}, -signal.SIGXCPU, 1.0, "", FailureReason.CPU_LIMIT),
        ({"cpu_seconds": 1}, 128 + signal.SIGXCPU, 1.0, "", FailureReason.CPU_LIMIT),
        ({"cpu_seconds": 2}, -signal.SIGKILL, 3.0, "", FailureReason.CPU_LIMIT),
        ({"cpu_seconds": 2}, -signal.SIGKILL, 0.1, "", None),
        ({"file_size_bytes": 512}, -signal.SIGXFSZ, 0, "", FailureReason.FILE_SIZE_LIMIT),
        ({}, -signal.SIGXFSZ, 0, "", None),
        (
            {"file_size_bytes": 512},
            1,
            0,
            "OSError: [Errno 27] File too large",
            FailureReason.FILE_SIZE_LIMIT,
        ),
        ({"memory_bytes": 2**24}, 1, 0, "MemoryError\n", FailureReason.MEMORY_LIMIT),
        ({}, 1, 0, "MemoryError\n", None),
        ({"processes": 4}, 2, 0, "sh: 1: Cannot fork\n", FailureReason.PROCESS_LIMIT),
        ({"open_files": 8}, 1, 0, "OSError: Too many open files", FailureReason.OPEN_FILES_LIMIT),
        ({"cpu_seconds": 1}, 0, 5.0, "", None),
    ],
)
def test_a_failure_is_put_down_to_a_limit_only_with_evidence(
    limits: dict[str, int],
    exit_code: int,
    cpu: float,
    stderr: str,
    reason: FailureReason | None,
) -> None:
    hit = limit_failure(limits, exit_code, cpu, stderr)
    assert (hit[0] if hit else None) == reason
