"""The OpenAPI 3.1 document of the routes as mounted: each path and method, its path
parameters and who may call it (nobody in particular, a SEP-10 session, or an operator key
with a permission) come from the routes themselves; summaries, query parameters, bodies and
success responses from operations.py. Any operation may answer an error ``{"error": ...}``."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.convertors import FloatConvertor, IntegerConvertor
from starlette.routing import BaseRoute, Mount, Route

from gateway import __version__
from gateway.openapi.operations import JSON, OPERATIONS, Operation, Param, Reply, Schema
from gateway.ops.operators import GRANTS
from gateway.sep10 import Sep10Backend

OPENAPI_VERSION = "3.1.0"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
PUBLIC, SESSION, OPERATOR = "public", "SEP-10 session", "operator"
ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What went wrong"}},
    "description": "Every error; some carry more fields (SEP-12's `type`, SEP-3's statuses).",
}
SECURITY_SCHEMES: dict[str, Schema] = {
    "sep10": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A SEP-10 session token: GET /auth for a challenge, sign it, POST it "
        "back to /auth.",
    },
    "operatorKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An operator key (gwop_...), made with `gateway operators create` or "
        "POST /ops/operators. Each route needs a permission its role grants.",
    },
}
DESCRIPTION = (
    "Stellar anchor and compliance gateway: SEP-1 stellar.toml, SEP-2 federation, SEP-3 "
    "compliance, SEP-10 web authentication, SEP-12 KYC, SEP-31 cross-border payments, the "
    "operator API under /ops and operational probes. Errors are JSON objects with an `error` "
    "text. Rate-limited requests answer 429 with Retry-After."
)


@dataclass(frozen=True)
class Mounted:
    path: str  # as OpenAPI writes it: /ops/customers/{id}
    methods: tuple[str, ...]
    route: Route
    access: str  # PUBLIC, SESSION or OPERATOR


def mounted(
    routes: Sequence[BaseRoute], prefix: str = "", session: bool = False
) -> Iterator[Mounted]:
    """Every Route under ``routes``, Mounts walked, with who may call it."""
    for r in routes:
        if isinstance(r, Mount):
            yield from mounted(r.routes, prefix + r.path, session or _needs_session(r))
        elif isinstance(r, Route):
            methods = tuple(sorted(set(r.methods or ("GET",)) - {"HEAD"}))
            if hasattr(r, "permission"):
                access = OPERATOR
            else:
                access = SESSION if session else PUBLIC
            yield Mounted(prefix + r.path_format, methods, r, access)


def _needs_session(mount: Mount) -> bool:
    """Whether the Mount's middleware authenticates SEP-10 sessions."""
    app: Any = mount.app
    while app is not None:
        if isinstance(getattr(app, "backend", None), Sep10Backend):
            return True
        app = getattr(app, "app", None)
    return False


def document(routes: Sequence[BaseRoute], *, base_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for m in mounted(routes):
        for method in m.methods:
            paths.setdefault(m.path, {})[method.lower()] = operation(method, m)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Stellar gateway", "version": __version__, "description": DESCRIPTION},
        "servers": [{"url": base_url}],
        "tags": [{"name": PUBLIC}, {"name": SESSION}, {"name": OPERATOR}],
        "paths": paths,
        "components": {
            "schemas": {"Error": copy.deepcopy(ERROR)},
            "securitySchemes": copy.deepcopy(SECURITY_SCHEMES),
        },
    }


def operation(method: str, m: Mounted) -> dict[str, Any]:
    described = OPERATIONS.get(f"{method} {m.path}") or Operation("")
    summary = (
        _first_line(m.route.endpoint.__doc__)
        or described.summary
        or m.route.name.replace("_", " ").capitalize()
    )
    notes = [described.description] if described.description else []
    out: dict[str, Any] = {
        "operationId": _operation_id(method, m.path),
        "summary": summary,
        "tags": [m.access],
    }
    errors = {"default": _reply(Reply("An error", JSON, ERROR_REF))}
    if m.access == OPERATOR:
        permission = m.route.permission  # type: ignore[attr-defined]
        roles = ", ".join(role for role, grants in GRANTS.items() if permission in grants)
        notes.append(f"Needs an operator key with the `{permission}` permission (roles: {roles}).")
        out["security"] = [{"operatorKey": []}]
        errors = {
            "401": _reply(Reply("No key, or one unknown, expired or revoked", JSON, ERROR_REF)),
            "403": _reply(Reply("The key's role lacks the permission", JSON, ERROR_REF)),
            **errors,
        }
    elif m.access == SESSION:
        notes.append("Needs a SEP-10 session token.")
        out["security"] = [{"sep10": []}]
        errors = {
            "403": _reply(Reply("No session, or one expired or forged", JSON, ERROR_REF)),
            **errors,
        }
    else:
        out["security"] = []
    if notes:
        out["description"] = " ".join(notes)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _path_schema(convertor),
        }
        for name, convertor in m.route.param_convertors.items()
    ]
    parameters += [_parameter(p, "query") for p in described.query]
    parameters += [_parameter(p, "header") for p in described.headers]
    if parameters:
        out["parameters"] = parameters
    if described.body is not None:
        out["requestBody"] = {
            "required": described.body.required,
            "content": {
                media: {"schema": copy.deepcopy(schema)}
                for media, schema in described.body.content.items()
            },
        }
    out["responses"] = {
        **{str(status): _reply(reply) for status, reply in sorted(described.replies.items())},
        **{k: v for k, v in errors.items() if k not in {str(s) for s in described.replies}},
    }
    return out


def _reply(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.media_type is not None:
        schema = copy.deepcopy(reply.schema) if reply.schema is not None else {}
        out["content"] = {reply.media_type: {"schema": schema}}
    return out


def _parameter(p: Param, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.name,
        "in": where,
        "required": p.required,
        "schema": copy.deepcopy(p.schema),
    }
    if p.description:
        out["description"] = p.description
    return out


def _path_schema(convertor: Any) -> Schema:
    if isinstance(convertor, IntegerConvertor):
        return {"type": "integer", "minimum": 0}
    if isinstance(convertor, FloatConvertor):
        return {"type": "number", "minimum": 0}
    # Starlette's default convertor: one path segment.
    return {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")
    return f"{method.lower()}_{words}" if words else method.lower()


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""
