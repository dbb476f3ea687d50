"""Fixtures of the SDK's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk.recorder import Recorder, serving


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A recording server for one test."""
    with serving(Recorder()) as running:
        yield running
