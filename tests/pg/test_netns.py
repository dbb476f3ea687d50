"""Workers on other "machines": network namespaces that reach PostgreSQL over virtual links.

Each namespace is joined to the root namespace by a veth pair on a /24 of 10.231.0.0/16 (the
test cluster listens on every address and trusts that network), and runs one ``taskqueue
worker`` whose only way to the database is that link. The API server runs in the root
namespace with no worker of its own.

* All the workers serve one queue: every task completes, each namespace's worker runs some, and
  every command proves where it ran (its network namespace and its worker's pid), in agreement
  with the attempt the database recorded.
* A worker cut off from the database by a partition loses its leases: the other worker reaps
  them and completes every task; when the link comes back, the cut-off worker's late results
  change nothing, and it goes back to work by itself.

Namespaces need root (or CAP_SYS_ADMIN); where they cannot be made, the test fails saying so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest
import sqlalchemy

from tests.conftest import PgDatabases, ServerProcess, query_db, wait_status, wait_until
from tests.netns import Namespace
from tests.pg.conftest import StartWorker, WorkerProcess, require_cluster

MakeServer = Callable[..., ServerProcess]

#: A command's proof of where it ran: its network namespace and its parent (the worker).
PROOF = 'echo "where $(readlink /proc/self/ns/net) $PPID"'
_PROOF = re.compile(r"where net:\[(\d+)\] (\d+)")
ATTEMPTS = "SELECT task_id, number, worker_id, status, started_at, finished_at, error FROM attempts"


def _url_in(db_url: str, ns: Namespace) -> str:
    return (
        sqlalchemy.engine.make_url(db_url)
        .set(host=ns.host_address)
        .render_as_string(hide_password=False)
    )


def _pid_of(worker_id: str) -> int:
    return int(worker_id.rsplit(":", 2)[1])


def _start_in(
    start_worker: StartWorker, ns: Namespace, db_url: str, *args: str
) -> tuple[WorkerProcess, str]:
    worker = start_worker(_url_in(db_url, ns), *args, prefix=ns.exec_prefix())
    worker_id = worker.wait_up()
    # `ip netns exec` execs the worker in place: the process we started is the worker.
    assert _pid_of(worker_id) == worker.pid, (worker_id, worker.pid)
    return worker, worker_id


def _clients(db_url: str) -> set[str]:
    name = sqlalchemy.engine.make_url(db_url).database
    rows = query_db(
        db_url,
        "SELECT DISTINCT host(client_addr) FROM pg_stat_activity"
        f" WHERE datname = '{name}' AND client_addr IS NOT NULL",
    )
    return {str(r[0]) for r in rows}


def test_workers_in_three_namespaces_serve_one_queue(
    pg: PgDatabases,
    make_server: MakeServer,
    start_worker: StartWorker,
    db_url: str,
    namespaces: Callable[[int], list[Namespace]],
) -> None:
    require_cluster(pg)
    spaces = namespaces(3)
    server = make_server("--workers", "0")
    workers: list[WorkerProcess] = []
    try:
        ids: dict[int, Namespace] = {}  # worker pid -> its namespace
        for ns in spaces:
            worker, worker_id = _start_in(
                start_worker, ns, db_url, "--concurrency", "3", "--lease-seconds", "10"
            )
            workers.append(worker)
            ids[_pid_of(worker_id)] = ns
        # Each worker's connections arrive from its namespace's address.
        clients = _clients(db_url)
        assert {ns.address for ns in spaces} <= clients, clients

        with httpx.Client(base_url=server.url, timeout=30) as api:
            batch = [
                {"name": f"where-{i}", "command": f"sleep 0.2; {PROOF}", "retry_attempts": 0}
                for i in range(60)
            ]
            created = api.post("/api/tasks/batch", json={"tasks": batch})
            assert created.status_code == 201, created.text
            ran_in: dict[str, int] = {ns.name: 0 for ns in spaces}
            for task in created.json()["tasks"]:
                done = wait_status(api, task["id"], timeout=120)
                assert done["status"] == "Completed", done
                proof = _PROOF.search(done["result"]["stdout_tail"])
                assert proof, done["result"]
                inode, parent = int(proof.group(1)), int(proof.group(2))
                assert parent in ids, f"run by pid {parent}, not one of our workers {set(ids)}"
                ns = ids[parent]
                assert inode == ns.inode, f"worker {parent} ran a command outside {ns.name}"
                attempts = api.get(f"/api/tasks/{task['id']}/attempts").json()["attempts"]
                assert len(attempts) == 1
                assert _pid_of(attempts[0]["worker_id"]) == parent
                ran_in[ns.name] += 1
        assert sum(ran_in.values()) == 60
        assert all(ran_in.values()), f"a namespace's worker ran nothing: {ran_in}"
    finally:
        for worker in workers:
            worker.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["link-down", "blackhole"])
def test_a_partitioned_worker_loses_its_leases_and_changes_nothing_when_it_returns(
    how: str,
    pg: PgDatabases,
    make_server: MakeServer,
    start_worker: StartWorker,
    db_url: str,
    namespaces: Callable[[int], list[Namespace]],
) -> None:
    require_cluster(pg)
    cut_off, other = namespaces(2)
    server = make_server("--workers", "0")
    args = ("--concurrency", "4", "--lease-seconds", "3")
    lonely, lonely_id = _start_in(start_worker, cut_off, db_url, *args)
    helper, _ = _start_in(start_worker, other, db_url, *args)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            batch = [
                {"name": f"p-{i}", "command": f"sleep 1; {PROOF}", "retry_attempts": 10}
                for i in range(40)
            ]
            created = api.post("/api/tasks/batch", json={"tasks": batch})
            assert created.status_code == 201, created.text
            task_ids = [t["id"] for t in created.json()["tasks"]]

            def running_by(worker_id: str) -> int:
                rows = query_db(
                    db_url,
                    "SELECT count(*) FROM attempts"
                    f" WHERE status = 'Running' AND worker_id = '{worker_id}'",
                )
                return int(rows[0][0])  # type: ignore[call-overload]

            wait_until(lambda: running_by(lonely_id) > 0, 60, "the first worker to run tasks")
            cut_off.cut(how)
            cut_at = time.time_ns() // 1000
            try:
                # The other worker reaps the cut-off worker's leases and completes every task.
                wait_until(
                    lambda: api.get("/api/health").json()["tasks"].get("Completed", 0) == 40,
                    180,
                    "every task to complete while one worker is cut off",
                )
                snapshot = query_db(
                    db_url,
                    "SELECT id, status, attempt, finished_at, result, lease_token FROM tasks"
                    " ORDER BY id",
                )
                attempts_then = query_db(db_url, f"{ATTEMPTS} ORDER BY task_id, number")
            finally:
                cut_off.heal(how)

            # The cut-off worker is back: with the other one gone, new tasks run only if it
            # recovered by itself.
            helper.stop()
            assert helper.process.returncode == 0, helper.output()
            more = api.post(
                "/api/tasks/batch",
                json={"tasks": [{"name": f"q-{i}", "command": PROOF} for i in range(8)]},
            )
            assert more.status_code == 201, more.text
            for task in more.json()["tasks"]:
                done = wait_status(api, task["id"], timeout=120)
                assert done["status"] == "Completed"
                assert f"where net:[{cut_off.inode}] {lonely.pid}" in done["result"]["stdout_tail"]
            assert lonely.process.poll() is None, lonely.output()

        # Whatever the cut-off worker tried to record on its return changed nothing.
        after = query_db(
            db_url,
            "SELECT id, status, attempt, finished_at, result, lease_token FROM tasks"
            f" WHERE id IN ({', '.join(repr(t) for t in task_ids)}) ORDER BY id",
        )
        assert after == snapshot
        assert (
            query_db(
                db_url,
                f"{ATTEMPTS} WHERE task_id IN ({', '.join(repr(t) for t in task_ids)})"
                " ORDER BY task_id, number",
            )
            == attempts_then
        )
        # The leases the cut-off worker held were reaped, never finished by it after the cut.
        lost = query_db(
            db_url,
            "SELECT task_id, number, status, error, finished_at FROM attempts"
            f" WHERE worker_id = '{lonely_id}' AND started_at < {cut_at}"
            f" AND (finished_at IS NULL OR finished_at > {cut_at})",
        )
        assert lost, "the cut-off worker held nothing when the link went down"
        for _task, _number, status, error, _finished in lost:
            assert status == "Failed", lost
            assert str(error).startswith("lease expired"), lost
        for task_id in task_ids:
            rows = [r for r in attempts_then if r[0] == task_id]
            statuses = [r[3] for r in rows]
            assert statuses[-1] == "Completed", rows
            assert statuses.count("Completed") == 1, rows
    finally:
        lonely.stop()
        helper.stop()
