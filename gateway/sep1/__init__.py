"""SEP-1 stellar.toml: rendering from settings and the organization's file, and its route."""

from gateway.sep1.document import ENDPOINT_KEYS, render
from gateway.sep1.routes import routes

__all__ = ["ENDPOINT_KEYS", "render", "routes"]
