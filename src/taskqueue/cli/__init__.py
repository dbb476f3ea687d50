"""The ``taskqueue`` command."""

import gc

from taskqueue.cli._examples import add_examples
from taskqueue.cli.main import main

add_examples(main)
# The modules just imported live as long as the command: no collection, nor the one at exit,
# need walk them.
gc.freeze()

__all__ = ["main"]
