"""The ``taskqueue`` command."""

from taskqueue.cli.main import main

__all__ = ["main"]
