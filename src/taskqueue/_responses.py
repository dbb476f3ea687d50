"""The base of every response model, shared by :mod:`taskqueue.models` and its siblings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["OutputModel"]


class OutputModel(BaseModel):
    """Base of response bodies: lenient on input so newer servers do not break older SDKs.

    Their JSON Schema lists every field as required: the server always sends each one.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        json_schema_serialization_defaults_required=True,
        # Built on first use: a CLI command that never validates a body does not pay for it.
        defer_build=True,
    )
