"""The examples that close every command's help page, in one place.

Each command's ``--help`` ends with an ``Examples:`` block from :data:`EXAMPLES`; a test checks
that every command has one, so a new command cannot ship without.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

__all__ = ["EXAMPLES", "add_examples", "commands"]

#: Command path (without ``taskqueue``) -> example command lines.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "taskqueue server",
        "taskqueue run -- echo hello",
        "taskqueue --api-key-file ~/.config/taskqueue/key --ca-bundle ca.pem tasks list",
    ),
    "tasks": ("taskqueue tasks list --status Failed", "taskqueue tasks get 4e1b2c"),
    "tasks create": (
        "taskqueue tasks create backup 'tar czf /tmp/home.tgz ~' --priority high",
        "taskqueue tasks create report ./report.sh --depends-on 4e1b2c --retry-attempts 2",
        "taskqueue tasks create feature ./agent.sh --type workflow --reviews-required 2",
    ),
    "tasks review": (
        "taskqueue tasks review 4e1b2c --approve -m 'looks good'",
        "taskqueue tasks review 4e1b2c --reject -m 'handle the empty input' --reviewer alice",
    ),
    "tasks reviews": ("taskqueue tasks reviews 4e1b2c", "taskqueue tasks reviews 4e1b2c --json"),
    "tasks review-link": (
        "taskqueue tasks review-link 4e1b2c --reviewer alice@example.com",
        "taskqueue tasks review-link 4e1b2c --reviewer bob --expires-in 3600 --json",
    ),
    "workflows": (
        "taskqueue workflows create web release --phases @release.json",
        "taskqueue workflows list web",
    ),
    "workflows create": (
        "taskqueue workflows create web release --phases @release.json",
        'taskqueue workflows create web quick --phases \'[{"name": "build", "command": "make"}]\'',
    ),
    "workflows list": ("taskqueue workflows list web", "taskqueue workflows list web --json"),
    "workflows get": (
        "taskqueue workflows get web release",
        "taskqueue workflows get web release --version 1 --json",
    ),
    "workflows delete": ("taskqueue workflows delete web release",),
    "tasks list": (
        "taskqueue tasks list --status Failed --limit 20",
        "taskqueue tasks list --all -o json | jq '.[].name'",
    ),
    "tasks get": ("taskqueue tasks get 4e1b2c", "taskqueue tasks get 4e1b2c -o json"),
    "tasks update": (
        "taskqueue tasks update 4e1b2c --priority critical",
        "taskqueue tasks update 4e1b2c --name nightly-backup --timeout 600",
    ),
    "tasks cancel": ("taskqueue tasks cancel 4e1b2c",),
    "tasks retry": ("taskqueue tasks retry 4e1b2c",),
    "tasks delete": ("taskqueue tasks delete 4e1b2c", "taskqueue tasks delete 4e1b2c --yes"),
    "tasks wait": ("taskqueue tasks wait 4e1b2c --timeout 60",),
    "tasks logs": ("taskqueue tasks logs 4e1b2c", "taskqueue tasks logs 4e1b2c --follow"),
    "tasks attempts": ("taskqueue tasks attempts 4e1b2c",),
    "tasks watch": ("taskqueue tasks watch", "taskqueue tasks watch --project etl"),
    "events": (
        "taskqueue events --follow --project etl",
        "taskqueue events --type task.failed --limit 20 -o json",
        "taskqueue events -f --type task.completed,task.failed --after 1200",
    ),
    "webhooks": (
        "taskqueue webhooks create https://hooks.example.com/tq --events task.failed",
        "taskqueue webhooks deliveries 4e1b2c",
    ),
    "webhooks create": (
        "taskqueue webhooks create https://hooks.example.com/tq --events task.failed "
        "--events task.completed --project etl",
        "taskqueue webhooks create https://ops.example.com/in --events 'task.*' "
        "--description pager -o json",
    ),
    "webhooks list": ("taskqueue webhooks list", "taskqueue webhooks list -o json"),
    "webhooks get": ("taskqueue webhooks get 4e1b2c",),
    "webhooks update": (
        "taskqueue webhooks update 4e1b2c --events task.failed,task.cancelled",
        "taskqueue webhooks update 4e1b2c --enable",
    ),
    "webhooks delete": ("taskqueue webhooks delete 4e1b2c --yes",),
    "webhooks rotate-secret": ("taskqueue webhooks rotate-secret 4e1b2c --grace 12h",),
    "webhooks deliveries": (
        "taskqueue webhooks deliveries 4e1b2c",
        "taskqueue webhooks deliveries 4e1b2c --limit 10 -o json",
    ),
    "webhooks redeliver": ("taskqueue webhooks redeliver 4e1b2c 1200",),
    "webhooks test": ("taskqueue webhooks test 4e1b2c",),
    "keys": ("taskqueue keys create --admin --name ops", "taskqueue keys list"),
    "keys create": (
        "taskqueue keys create --name ci --scope write --project etl",
        "taskqueue keys create --admin --name first --db taskqueue.db",
        "taskqueue keys create --name signer --pair --expires-in 90d",
    ),
    "keys list": ("taskqueue keys list", "taskqueue keys list --db taskqueue.db -o json"),
    "keys revoke": ("taskqueue keys revoke tq_3kTq9x2a",),
    "keys rotate": ("taskqueue keys rotate tq_3kTq9x2a --grace 24h",),
    "projects": ("taskqueue projects create etl", "taskqueue projects list"),
    "projects create": ("taskqueue projects create etl --description 'nightly loads'",),
    "projects list": ("taskqueue projects list", "taskqueue projects list -o yaml"),
    "projects get": ("taskqueue projects get etl",),
    "projects update": ("taskqueue projects update etl --description 'hourly loads'",),
    "projects delete": ("taskqueue projects delete etl", "taskqueue projects delete etl --cascade"),
    "run": (
        "taskqueue run -- ls -la",
        "taskqueue run --retry-attempts 3 --timeout 60 'make test | tee log'",
        "taskqueue run --limit cpu_seconds=60 --limit memory_bytes=1G --no-network -- make test",
    ),
    "exec": (
        "taskqueue exec script.py",
        "taskqueue exec --language ruby -e 'puts 1'",
        "taskqueue exec -l python3 --input '{\"n\": 2}' job.txt",
    ),
    "schedules": (
        "taskqueue schedules create '*/5 * * * *' --tz Europe/Berlin -- ./sync.sh",
        "taskqueue schedules list",
    ),
    "schedules create": (
        "taskqueue schedules create '*/5 * * * *' --tz Europe/Berlin -- ./sync.sh --full",
        "taskqueue schedules create --every 30 --name heartbeat -- echo alive",
        "taskqueue schedules create @daily --overlap buffer_one --catchup latest -- make report",
    ),
    "schedules list": ("taskqueue schedules list", "taskqueue schedules list --json"),
    "schedules get": ("taskqueue schedules get 4e1b2c", "taskqueue schedules get 4e1b2c --json"),
    "schedules next": (
        "taskqueue schedules next 4e1b2c",
        "taskqueue schedules next 4e1b2c --count 10",
    ),
    "schedules runs": (
        "taskqueue schedules runs 4e1b2c",
        "taskqueue schedules runs 4e1b2c --limit 5",
    ),
    "schedules pause": ("taskqueue schedules pause 4e1b2c",),
    "schedules resume": ("taskqueue schedules resume 4e1b2c",),
    "schedules trigger": (
        "taskqueue schedules trigger 4e1b2c",
        "taskqueue schedules trigger 4e1b2c --json",
    ),
    "functions": (
        "taskqueue functions create summarize --file summarize.py --input-schema @in.json",
        "taskqueue functions list",
    ),
    "functions create": (
        "taskqueue functions create upper --command ./upper.sh "
        "--input-schema '{\"type\": \"object\"}' --description 'Upper-cases text'",
        "taskqueue functions create summarize --file summarize.py --input-schema @in.json "
        "--output-schema @out.json",
        "taskqueue functions create echo --language python3 --code 'print(1)' "
        "--no-validate-output --json",
    ),
    "functions list": ("taskqueue functions list", "taskqueue functions list --json"),
    "functions get": (
        "taskqueue functions get 4e1b2c",
        "taskqueue functions get 4e1b2c --version 1 --json",
    ),
    "functions versions": ("taskqueue functions versions 4e1b2c",),
    "execute": (
        'taskqueue execute 4e1b2c --input \'{"text": "hello"}\'',
        "taskqueue execute 4e1b2c --input @input.json --version 2 --json",
        "taskqueue execute 4e1b2c --input - --timeout-ms 5000 --force-validation",
    ),
    "batch-execute": (
        "taskqueue batch-execute 4e1b2c inputs.jsonl",
        "taskqueue batch-execute 4e1b2c inputs.jsonl --max-concurrency 5 --stop-on-first-error",
        "taskqueue batch-execute 4e1b2c inputs.jsonl --json | jq .failure_count",
    ),
    "submit": ("taskqueue submit pipeline.yaml", "taskqueue submit tasks.jsonl --no-wait"),
    "health": ("taskqueue health", "taskqueue health -o json"),
    "config": ("taskqueue config show", "taskqueue config set base_url http://127.0.0.1:8080"),
    "config show": ("taskqueue config show", "taskqueue --profile staging config show"),
    "config set": (
        "taskqueue config set base_url http://127.0.0.1:9000",
        "taskqueue config set --local timeout 30",
    ),
    "config profiles": ("taskqueue config profiles",),
    "workers": ("taskqueue workers", "taskqueue workers -o json"),
    "server": (
        "taskqueue server",
        "taskqueue server --port 9000 --db postgresql://tq@db.internal/tq --workers 0",
    ),
    "worker": (
        "taskqueue worker --db postgresql://tq@db.internal/tq",
        "taskqueue worker --db ./taskqueue.db --concurrency 4 --queue builds",
        "taskqueue worker --db ./taskqueue.db --languages python3,bash",
    ),
    "db": ("taskqueue db upgrade --db ./taskqueue.db",),
    "db upgrade": ("taskqueue db upgrade --db postgresql://tq@db.internal/tq",),
}


def commands(group: click.Command, path: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every command under ``group`` (itself first), with its path."""
    yield path, group
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            yield from commands(command, f"{path} {name}".strip())


def add_examples(group: click.Command) -> None:
    """Close the help page of every command under ``group`` with its examples."""
    for path, command in commands(group):
        lines = EXAMPLES.get(path)
        if lines:
            command.epilog = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
