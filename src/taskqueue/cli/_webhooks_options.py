"""``taskqueue server --webhook-...``: how the server sends webhooks (see ``docs/webhooks.md``).

Kept apart from :mod:`taskqueue.cli.main` so the command tree grows by one decorator; it
imports nothing of the server: the command gets one ``webhooks`` :class:`WebhookOptions`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["WebhookOptions", "webhook_options"]


@dataclass(frozen=True)
class WebhookOptions:
    """The ``--webhook-...`` options as given (``WebhookSettings`` on the server's side)."""

    dispatch: bool = True
    allow_private: bool = False
    timeout: float = 10.0
    retry_scale: float = 1.0
    lease: float = 30.0


_OPTIONS = [
    click.option(
        "--webhook-allow-private",
        is_flag=True,
        envvar="TASKQUEUE_WEBHOOK_ALLOW_PRIVATE",
        help="Send webhooks to private, loopback and link-local addresses too (refused by "
        "default, so a subscription cannot reach this network's internal services; env "
        "TASKQUEUE_WEBHOOK_ALLOW_PRIVATE).",
    ),
    click.option(
        "--webhook-timeout",
        type=click.FloatRange(0.1, 300),
        default=10.0,
        show_default=True,
        envvar="TASKQUEUE_WEBHOOK_TIMEOUT",
        help="Seconds one webhook delivery may take; slower counts as failed and is retried.",
    ),
    click.option(
        "--no-webhooks",
        is_flag=True,
        help="Deliver no webhooks from this process (another server on the database does).",
    ),
    click.option(
        "--webhook-retry-scale",
        type=click.FloatRange(1e-6, 1.0),
        default=1.0,
        hidden=True,  # tests compress the retry schedule and the day before disabling
        help="Multiply the webhook retry schedule and the disable-after-a-day window.",
    ),
    click.option(
        "--webhook-lease",
        type=click.FloatRange(0.3, 3600),
        default=30.0,
        hidden=True,  # tests of a killed server shorten the wait before another takes over
        help="Seconds a server's hold on a webhook subscription lasts unless renewed.",
    ),
]


def webhook_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the webhook options to a command, passed to it as one ``webhooks``."""

    @functools.wraps(function)
    def wrapper(
        *args: Any,
        webhook_allow_private: bool,
        webhook_timeout: float,
        no_webhooks: bool,
        webhook_retry_scale: float,
        webhook_lease: float,
        **kwargs: Any,
    ) -> Any:
        kwargs["webhooks"] = WebhookOptions(
            dispatch=not no_webhooks,
            allow_private=webhook_allow_private,
            timeout=webhook_timeout,
            retry_scale=webhook_retry_scale,
            lease=webhook_lease,
        )
        return function(*args, **kwargs)

    decorated: Callable[..., Any] = wrapper
    for option in reversed(_OPTIONS):
        decorated = option(decorated)
    return decorated
