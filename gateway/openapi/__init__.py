"""The OpenAPI document of every mounted route (GET /openapi.json) and a page showing it
(GET /docs); the routes are in ``gateway.openapi.routes``."""

from gateway.openapi.document import document, mounted
from gateway.openapi.operations import OPERATIONS

__all__ = ["OPERATIONS", "document", "mounted"]
