"""The base of request bodies: camelCase accepted beside snake_case, never both; unknown refused.

Kept apart from :mod:`taskqueue._requests` so that every module of input models
(:mod:`taskqueue._limits`, :mod:`taskqueue._webhook_models`) shares it without a cycle.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError


def _twice(model: str, name: str, alias: str, value: Any) -> ValidationError:
    error = PydanticCustomError(
        "duplicate_field",
        "{name} is given twice, as {name} and as {alias}; give one spelling",
        {"name": name, "alias": alias},
    )
    return ValidationError.from_exception_data(
        model, [InitErrorDetails(type=error, loc=(alias,), input=value)]
    )


class _Input(BaseModel):
    """Base of request bodies: camelCase accepted, unknown fields refused.

    A field given in both spellings (``retry_attempts`` and ``retryAttempts``) is refused: which
    one to keep would be a guess.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_max_length=1_000_000,
        allow_inf_nan=False,
        # Built on first use: a CLI command that never validates a body does not pay for it.
        defer_build=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                alias = field.alias
                if alias is not None and alias != name and name in data and alias in data:
                    raise _twice(cls.__name__, name, alias, data[alias])
        return data
