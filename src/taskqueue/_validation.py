"""Pydantic's validation errors as the API's error details, for the server and the SDK alike.

The server answers bad input with these details, and the SDK raises the same ones when it checks
input before sending it, so both sides build them here.
"""

from __future__ import annotations

from typing import Any

import pydantic

__all__ = ["validation_details"]


def validation_details(
    exc: pydantic.ValidationError, prefix: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Pydantic's errors as ``{"loc", "msg", "type"}``, without echoing the (maybe huge) input.

    ``prefix`` goes in front of every location (``("query",)`` for query parameters).
    """
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
