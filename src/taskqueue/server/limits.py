"""The operator's maxima on the API: a task asking for more is refused at creation (422)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

from taskqueue._limits import LimitPolicy
from taskqueue._requests import TaskCreate
from taskqueue.server.errors import ApiError

__all__ = ["check_limits"]


def check_limits(request: Request, items: Sequence[TaskCreate], batch: bool) -> None:
    """Refuse (422) tasks whose ``limits`` ask for more than the operator's maxima, by field."""
    policy: LimitPolicy = request.app.state.settings.limits
    if not policy.maxima:
        return
    details: list[dict[str, Any]] = [
        {
            "loc": (["tasks", i] if batch else []) + ["limits", name],
            "msg": f"{name} {asked} is over this server's maximum of {ceiling}",
            "type": "limit_over_maximum",
        }
        for i, item in enumerate(items)
        for name, asked, ceiling in policy.over_maxima(item.limits)
    ]
    if details:
        names = ", ".join(sorted({".".join(map(str, d["loc"][-2:])) for d in details}))
        raise ApiError(422, f"limits over this server's maxima: {names}", details)
