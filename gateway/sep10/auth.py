"""The one SEP-10 authentication backend other SEP packages mount in front of their routes."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import AuthenticationFailed
from gateway.sep10.tokens import AuthSession, SessionTokens

NO_SESSION_MESSAGE = "Authentication required: send 'Authorization: Bearer <token>'"


class Sep10Backend(AuthenticationBackend):
    def __init__(self, tokens: SessionTokens):
        self._tokens = tokens

    async def authenticate(
        self, conn: HTTPConnection
    ) -> tuple[AuthCredentials, AuthSession] | None:
        header = conn.headers.get("authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization header must be 'Bearer <token>'")
        try:
            session = self._tokens.read(token.strip())
        except AuthenticationFailed as exc:
            raise AuthenticationError(exc.message) from None
        return AuthCredentials(["sep10"]), session


def sep10_middleware(tokens: SessionTokens, status: int = 403) -> Sequence[Middleware]:
    """Middleware for a Mount whose routes all need a SEP-10 session. A missing, expired,
    forged or foreign token answers ``status`` with a JSON ``error`` (SEP-31 wants 403,
    SEP-12 allows 401)."""

    def on_error(_conn: HTTPConnection, exc: AuthenticationError) -> Response:
        return JSONResponse({"error": str(exc) or "Authentication required"}, status_code=status)

    return [
        Middleware(AuthenticationMiddleware, backend=Sep10Backend(tokens), on_error=on_error),
        Middleware(RequireSession, status=status),
    ]


class RequireSession:
    """Refuses, with ``status``, requests the authentication backend found no token on."""

    def __init__(self, app: ASGIApp, status: int):
        self.app = app
        self.status = status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not isinstance(scope.get("user"), AuthSession):
            response = JSONResponse({"error": NO_SESSION_MESSAGE}, status_code=self.status)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def session_of(request: Request) -> AuthSession:
    """The caller's SEP-10 session; AuthenticationFailed when the request carries none."""
    user = request.scope.get("user")
    if isinstance(user, AuthSession):
        return user
    raise AuthenticationFailed(NO_SESSION_MESSAGE)
