"""The HTTP API server (install ``taskqueue-sdk[server]``)."""

from taskqueue.server.app import ServerSettings, create_app, is_loopback
from taskqueue.server.services import Service

__all__ = ["ServerSettings", "Service", "create_app", "is_loopback"]
