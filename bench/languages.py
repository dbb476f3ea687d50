"""The code task benchmark: what taskqueue adds around each language's interpreter.

Run from the repository root::

    .venv/bin/python -m bench.languages            # 30 runs of each language
    .venv/bin/python -m bench.languages --quick    # a smoke run (10 of each)

For ``python3`` (``pass``), ``node`` (``0``) and ``bash`` (``true``), a language whose program
is not on ``PATH`` (``shutil.which``) or that the server's worker does not offer
(``GET /api/languages``) is skipped with a note. For each, one at a time and alternating:

- a code task (``POST /api/tasks`` with ``language`` and ``code``, then
  ``GET /api/tasks/{id}/wait``) on a ``taskqueue server`` subprocess (``--workers 1``) on a
  fresh SQLite file. Its time is what the API reports: ``result.duration_ms`` (the worker's
  clock from before it writes the code file until the process exited; whole milliseconds,
  truncated) and the attempt's ``finished_at - started_at`` (claim to the recorded end);
- the same program written to a file in a temp dir and run by this script with
  ``subprocess.run([interpreter, file])``, and also as the worker does it,
  ``/bin/sh -c 'interpreter file'``.

p50 of each and the overhead: the p50 of ``duration_ms`` minus the p50 of the direct run, in ms
and as a ratio, and the median of the run-by-run differences (each task beside the direct run
that followed it: steadier on a noisy machine). The server and this script share the machine's
cores, and the environment (``PATH``) is the same.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.run import Server, percentile, say

#: (language, program on PATH, trivial code, file name)
PROGRAMS = (
    ("python3", "python3", "pass\n", "main.py"),
    ("node", "node", "0\n", "main.js"),
    ("bash", "bash", "true\n", "main.bash"),
)


@dataclass
class Timings:
    """Milliseconds of each run of one language, by how it was run."""

    duration_ms: list[float] = field(default_factory=list)
    attempt: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)
    via_sh: list[float] = field(default_factory=list)


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _check(response: httpx.Response, expected: int, what: str) -> dict[str, Any]:
    if response.status_code != expected:
        raise RuntimeError(
            f"{what}: {response.request.method} {response.request.url} answered "
            f"{response.status_code}, expected {expected}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


def offered(api: httpx.Client) -> dict[str, int]:
    """Each language's count of live workers offering it."""
    listed = _check(api.get("/api/languages"), 200, "list the languages")["languages"]
    return {str(entry["name"]): int(entry["workers"]) for entry in listed}


def code_task(api: httpx.Client, language: str, code: str, n: int) -> tuple[float, float]:
    """(``result.duration_ms``, ``finished_at - started_at`` in ms) of one code task."""
    body = {"name": f"{language}-{n}", "language": language, "code": code, "retry_attempts": 0}
    made = _check(api.post("/api/tasks", json=body), 201, f"create a {language} task")
    task = _check(
        api.get(f"/api/tasks/{made['id']}/wait", params={"timeout": 30}), 200, "wait for it"
    )
    if task["status"] != "Completed":
        raise RuntimeError(f"the {language} task ended {task['status']}: {task}")
    attempt = (_time(task["finished_at"]) - _time(task["started_at"])) * 1000
    return float(task["result"]["duration_ms"]), attempt


def run_direct(command: list[str]) -> float:
    """Milliseconds of one run of ``command`` by this script."""
    began = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return (time.perf_counter() - began) * 1000


def measure(
    api: httpx.Client, language: str, program: str, code: str, name: str, runs: int, workdir: Path
) -> Timings:
    """``runs`` of each way, alternating, after one warm-up of each."""
    path = workdir / name
    path.write_text(code)
    direct = [program, str(path)]
    via_sh = ["/bin/sh", "-c", f"{shlex.quote(program)} {shlex.quote(str(path))}"]
    timings = Timings()
    code_task(api, language, code, -1)
    run_direct(direct)
    run_direct(via_sh)
    for n in range(runs):
        duration, attempt = code_task(api, language, code, n)
        timings.duration_ms.append(duration)
        timings.attempt.append(attempt)
        timings.direct.append(run_direct(direct))
        timings.via_sh.append(run_direct(via_sh))
    return timings


def main(argv: list[str] | None = None) -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--runs", type=int, default=30, help="runs of each language, each way")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 10
    present = []
    for language, program, code, name in PROGRAMS:
        found = shutil.which(program)
        if found is None:
            say(f"  note: {program} is not on PATH: {language} skipped")
        else:
            present.append((language, program, code, name, found))
    if not present:
        say("  note: none of python3, node, bash is installed: nothing to measure")
        return 0
    server = Server(workers=1)
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="taskqueue-bench-languages-"))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as api:
            workers = offered(api)
            say(f"== code task vs the interpreter run directly ({args.runs} runs each, "
                "one at a time; p50 ms)")  # fmt: skip
            say(f"  {'language':<9} {'duration_ms':>11} {'attempt':>8} {'direct':>8} "
                f"{'sh -c':>8} {'overhead':>9} {'ratio':>6} {'paired':>7}   program")  # fmt: skip
            for language, program, code, name, found in present:
                if workers.get(language, 0) == 0:
                    say(f"  note: the server's worker does not offer {language}: skipped")
                    continue
                t = measure(api, language, program, code, name, args.runs, workdir)
                task, direct = percentile(t.duration_ms, 50), percentile(t.direct, 50)
                pairs = zip(t.duration_ms, t.direct, strict=True)
                paired = statistics.median(a - b for a, b in pairs)
                say(f"  {language:<9} {task:>11.1f} {percentile(t.attempt, 50):>8.1f} "
                    f"{direct:>8.1f} {percentile(t.via_sh, 50):>8.1f} "
                    f"{task - direct:>+9.1f} {task / direct:>6.2f} {paired:>+7.1f}   "
                    f"{os.path.realpath(found)}")  # fmt: skip
            say("  duration_ms: the task's result.duration_ms (whole ms, truncated); attempt:")
            say("  finished_at - started_at; direct: subprocess.run([program, file]); sh -c:")
            say("  /bin/sh -c 'program file'; overhead and ratio: duration_ms against direct;")
            say("  paired: median of the run-by-run differences, duration_ms - direct.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        problems = server.problems()
        exit_code = server.stop()
        if exit_code not in (0, -15, None):
            say(f"  note: the server exited with code {exit_code} on SIGTERM")
        for line in problems:
            say(f"  server log: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
