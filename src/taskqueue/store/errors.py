"""Errors the store raises when a request cannot be applied; the API maps each to a status."""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "InvalidInput", "NotFound", "StoreError", "Unavailable"]


class StoreError(Exception):
    """Base of the store's refusals. Raised inside a transaction, it rolls the change back."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    """The task or project does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident} not found")
        self.kind = kind
        self.ident = ident


class Conflict(StoreError):
    """The change conflicts with the current state (a running task, a used name...).

    ``details`` names each refused part of a request that has several (a batch's items).
    """

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details: list[dict[str, Any]] = details or []


class InvalidInput(StoreError):
    """Input that is well formed but refers to something that is not there."""

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.details = details


class Unavailable(StoreError):
    """The database cannot be reached right now; the same request may succeed when repeated."""
