"""The ``taskqueue`` command."""

from taskqueue.cli._examples import add_examples
from taskqueue.cli.main import main

add_examples(main)

__all__ = ["main"]
