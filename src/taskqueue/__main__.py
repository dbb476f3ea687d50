"""``python -m taskqueue``: the same as the ``taskqueue`` command."""

from taskqueue.cli import main

if __name__ == "__main__":  # pragma: no cover - run as a program
    main(prog_name="taskqueue")
