"""HTTP edge policy, as one pure-ASGI middleware: request ids, CORS, body size limit, and the
last-resort 500 that never shows internals.

CORS: every response carries ``Access-Control-Allow-Origin: *`` (SEP-1, 2 and 10 require it,
errors included) and preflight requests are answered here. Sessions are bearer tokens, never
cookies, so a wildcard origin exposes nothing.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.errors import BadRequest, GatewayError, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("gateway.http")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PREFLIGHT_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE, OPTIONS"),
    (b"access-control-allow-headers", b"Authorization, Content-Type, X-Request-ID"),
    (b"access-control-max-age", b"600"),
    (b"content-length", b"0"),
]
_ACAO = (b"access-control-allow-origin", b"*")
_EXPOSE = (b"access-control-expose-headers", b"X-Request-ID, Retry-After")


class Edge:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, path_limits: dict[str, int] | None = None
    ):
        self.app = app
        self.max_body = max_body_bytes
        # Larger limits under some path prefixes (file uploads), longest prefix first.
        self.path_limits = sorted((path_limits or {}).items(), key=lambda kv: -len(kv[0]))

    def _limit(self, path: str) -> int:
        for prefix, limit in self.path_limits:
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or secrets.token_hex(8)
        token = request_id.set(rid)
        rid_header = (b"x-request-id", rid.encode())
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _ACAO[0]]
                headers.extend((_ACAO, _EXPOSE, rid_header))
                message["headers"] = headers
            await send(message)

        try:
            if scope["method"] == "OPTIONS" and _has_header(
                scope, b"access-control-request-method"
            ):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [*_PREFLIGHT_HEADERS, rid_header],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
            if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b""):
                # Nothing in any SEP has a NUL; PostgreSQL cannot even compare one.
                await _send_error(send_with_headers, BadRequest("the URL must not contain NUL"))
                return
            limit = self._limit(scope.get("path", ""))
            length = _content_length(scope)
            if length is not None and length > limit:
                await _send_error(send_with_headers, PayloadTooLarge())
                return
            await self.app(scope, self._limited(receive, limit), send_with_headers)
        except GatewayError as exc:
            if started:
                log.warning("%s after the response started", type(exc).__name__)
            else:
                await _send_error(send_with_headers, exc)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope.get("path"))
            if not started:
                await _send_error(send_with_headers, GatewayError())
        finally:
            request_id.reset(token)

    def _limited(self, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge()
            return message

        return limited


async def _send_error(send: Send, exc: GatewayError) -> None:
    body = json.dumps(exc.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.extend((k.lower().encode(), v.encode()) for k, v in exc.headers().items())
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _has_header(scope: Scope, name: bytes) -> bool:
    return any(k == name for k, _ in scope.get("headers", ()))


def _incoming_id(scope: Scope) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == b"x-request-id":
            text = v.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None
