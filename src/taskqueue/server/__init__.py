"""The HTTP API server (install ``taskqueue[server]``)."""

from taskqueue.server.app import ServerSettings, create_app, is_loopback

__all__ = ["ServerSettings", "create_app", "is_loopback"]
