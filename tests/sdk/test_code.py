"""Seed 004's flow over code tasks, through both clients, against a real server and worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from taskqueue import AsyncTaskQueueClient, TaskQueueClient, TaskStatus, ValidationError
from taskqueue.client import _async_code
from tests.conftest import ServerProcess


@pytest.fixture
def code_server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server("--workers", "2", "--languages", "python3,bash,sh")


def test_the_sync_client_runs_code_waits_and_lists_jobs(code_server: ServerProcess) -> None:
    with TaskQueueClient(code_server.url) as client:
        result = client.execute_code(
            "python", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
        )
        assert result.status is TaskStatus.FAILED
        assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
        assert result.language == "python3"
        assert result.duration_ms is not None
        assert result.duration == result.duration_ms / 1000

        job = client.execute_async("bash", 'read -r line; echo "got $line"', input={"a": 1})
        done = client.wait_for_job(job)
        assert done.success
        assert done.stdout == 'got {"a": 1}\n'
        assert client.get_job(job).status is TaskStatus.COMPLETED
        assert str(done.job_id) in [str(t.id) for t in client.list_jobs()]
        assert all(t.language is not None for t in client.list_jobs())

        slow = client.execute_async("sh", "sleep 60")
        assert client.cancel_job(slow).status is TaskStatus.CANCELLED

        with pytest.raises(ValidationError, match="python3, sh"):
            client.execute_async("ruby", "puts 1")


def test_languages_are_cached_for_an_hour_and_dropped_on_error(
    code_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with AsyncTaskQueueClient(code_server.url) as client:
            languages = {info.name: info for info in await client.get_languages()}
            assert languages["python3"].workers == 1
            assert languages["python3"].versions[0].startswith("Python 3")
            assert ".py" in languages["python3"].extensions
            assert languages["ruby"].workers == 0
            cached = client._languages_cache
            assert cached is not None
            assert (await client.get_languages())[0] is cached[1][0]  # no request made
            # Past the hour, it asks again.
            monkeypatch.setattr(_async_code, "LANGUAGES_CACHE_S", 0.0)
            assert (await client.get_languages())[0] is not cached[1][0]
            monkeypatch.setattr(_async_code, "LANGUAGES_CACHE_S", 3600.0)
            with pytest.raises(ValidationError):
                await client.execute_async("ruby", "puts 1")
            assert client._languages_cache is None
            result = await client.execute_code("sh", "echo $((6 * 7))")
            assert result.stdout == "42\n"

    asyncio.run(main())
