"""What the server hands its events on to besides its own API: NATS (:mod:`.nats`).

Each integration is a reader of the outbox with its own durable cursor, run beside the API as
a :class:`~taskqueue.server.services.Service`: it never holds a task, and a sink that is down
only makes it fall behind.
"""
