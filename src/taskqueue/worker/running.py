"""One attempt of a claimed task, start to end: its files, its confinement, its command.

:class:`AttemptRunner` runs in a runner thread of the worker (one per running command; see
:mod:`taskqueue.worker.process`). It writes the attempt's input, makes its private temp
directory and, for a code task, its source file; runs the command confined by the task's
limits; reads ``$TASKQUEUE_OUTPUT``; removes what it made; and returns the outcome for the
store.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from taskqueue.models import FailureReason
from taskqueue.store import Claimed, Outcome
from taskqueue.worker.attempt import (
    attempt_files,
    is_private,
    outcome_of,
    private_tmpdir,
    write_input,
)
from taskqueue.worker.limits import NetworkUnavailable, confine
from taskqueue.worker.orphans import process_start
from taskqueue.worker.process import OutputCapture, run_command
from taskqueue.worker.results import output_mismatch, read_result
from taskqueue.worker.settings import WorkerSettings
from taskqueue.worker.toolchains import code_command, remove_code

__all__ = ["AttemptRunner"]


class AttemptRunner:
    """Runs attempts for one worker; its files live in a private directory of the worker's."""

    def __init__(self, settings: WorkerSettings, worker_id: str) -> None:
        self.settings: WorkerSettings = settings
        self.worker_id: str = worker_id
        #: This database's deployment id, given to every command (learnt when the worker runs).
        self.deployment: str = ""
        self._files, self._outputs = attempt_files(settings.run_as)
        self._null_input = self._files / "null.json"
        write_input(self._null_input, "null", settings.run_as)
        self._no_dependencies = self._files / "no-dependencies.json"
        write_input(self._no_dependencies, "{}", settings.run_as)
        # Commands get the worker's environment, less its secrets: the database URL carries a
        # password, and a command's output is served by the API.
        self._base_env = {k: v for k, v in os.environ.items() if not is_private(k)}
        if settings.run_as is not None:
            self._base_env = settings.run_as.environment(self._base_env)
        self._started = str(process_start(os.getpid()) or 0)

    def remove_files(self) -> None:
        """Remove the worker's attempt files (once nothing runs)."""
        shutil.rmtree(self._files, ignore_errors=True)

    def environment(
        self,
        claimed: Claimed,
        input_path: str,
        output_path: str,
        tmpdir: str,
        dependencies_path: str | None = None,
    ) -> dict[str, str]:
        """The command's environment: the worker's less its secrets, the task's, and ours."""
        env = dict(self._base_env)
        env["TMPDIR"] = env["TMP"] = env["TEMP"] = tmpdir  # the attempt's own, removed after
        env.update(claimed.environment)  # a task that names its own temp dir keeps it
        env["TASKQUEUE_TASK_ID"] = claimed.id
        env["TASKQUEUE_ATTEMPT"] = str(claimed.attempt)
        env["TASKQUEUE_WORKER_ID"] = self.worker_id
        env["TASKQUEUE_WORKER_START"] = self._started
        env["TASKQUEUE_DEPLOYMENT"] = self.deployment
        env["TASKQUEUE_INPUT"] = input_path
        env["TASKQUEUE_OUTPUT"] = output_path
        env["TASKQUEUE_DEPENDENCIES"] = dependencies_path or str(self._no_dependencies)
        return env

    def dependencies_path(self, claimed: Claimed) -> str:
        """The attempt's ``$TASKQUEUE_DEPENDENCIES``: what its dependencies produced."""
        if not claimed.dependencies:
            return str(self._no_dependencies)
        path = self._files / f"{claimed.id}-{claimed.attempt}.deps.json"
        write_input(path, json.dumps(claimed.dependencies), self.settings.run_as)
        return str(path)

    def attempt_paths(self, claimed: Claimed) -> tuple[str, str, str]:
        """The attempt's ``$TASKQUEUE_INPUT`` (written here), its stdin and its output file."""
        stem = f"{claimed.id}-{claimed.attempt}"
        output_path = str(self._outputs / f"{stem}.out.json")
        if claimed.input is None:
            return str(self._null_input), os.devnull, output_path
        input_path = str(self._files / f"{stem}.in.json")
        write_input(Path(input_path), json.dumps(claimed.input), self.settings.run_as)
        return input_path, input_path, output_path

    def run(
        self,
        claimed: Claimed,
        sink: Callable[[str, bytes], None],
        should_stop: Callable[[], bool],
    ) -> Outcome:
        """One attempt, start to end, in a runner thread: files, the command, its result.

        ``sink`` takes the output as the command writes it; ``should_stop`` says when to stop
        the command (a cancel, a lost lease, a shutdown).
        """
        settings = self.settings
        cwd = claimed.working_directory
        if cwd is not None and not os.path.isdir(cwd):
            return Outcome(
                False,
                error=f"working_directory {cwd!r} is not a directory",
                reason=FailureReason.SPAWN_ERROR,
            )
        run_as = settings.run_as
        try:
            confined = confine(settings.limits, claimed.limits, run_as)
        except NetworkUnavailable as exc:
            return Outcome(False, error=str(exc), reason=FailureReason.ISOLATION_UNAVAILABLE)
        input_path, stdin_path, output_path = self.attempt_paths(claimed)
        if cwd is None and run_as is not None:
            cwd = run_as.start_directory  # never the worker's own directory

        captures = (
            OutputCapture("stdout", settings.output_limit, sink),
            OutputCapture("stderr", settings.output_limit, sink),
        )
        command, code_dir = claimed.command, None
        tmpdir = private_tmpdir(self._files, f"{claimed.id}-{claimed.attempt}", run_as)
        dependencies_path = self.dependencies_path(claimed)
        env = self.environment(claimed, input_path, output_path, str(tmpdir), dependencies_path)
        started = time.monotonic()
        try:
            if claimed.language is not None:
                command, code_dir = code_command(claimed.language, claimed.code or "", run_as)
            result = run_command(
                command,
                env,
                stdin_path,
                captures,
                cwd=cwd,
                timeout=claimed.timeout,
                grace=settings.kill_grace_seconds,
                should_stop=should_stop,
                run_as=confined.spawn_as,
                prelude=confined.prelude,
                prefix=confined.prefix,
            )
            duration_ms = int((time.monotonic() - started) * 1000)
            output, output_error = read_result(
                output_path, owner=None if run_as is None else run_as.uid
            )
            if output_error is None and claimed.output_schema is not None:
                output_error = output_mismatch(claimed.output_schema, output)
        finally:
            self._clean_up(tmpdir, code_dir, input_path, output_path)
            if dependencies_path != str(self._no_dependencies):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dependencies_path)
        return outcome_of(
            result, claimed.timeout, output, output_error, captures, duration_ms, confined.limits
        )

    def _clean_up(
        self, tmpdir: Path, code_dir: Path | None, input_path: str, output_path: str
    ) -> None:
        """Remove what the attempt made: its temp dir, its source, its input and output."""
        shutil.rmtree(tmpdir, ignore_errors=True)
        if code_dir is not None:
            remove_code(code_dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(output_path)
        if input_path != str(self._null_input):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(input_path)
