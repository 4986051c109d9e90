"""SEP-10 Stellar Web Authentication: challenges, session tokens, and the auth backend."""

from gateway.sep10.auth import Sep10Backend, sep10_middleware, session_of
from gateway.sep10.service import WebAuthConfig, WebAuthService
from gateway.sep10.tokens import AuthSession, SessionTokens

__all__ = [
    "AuthSession",
    "Sep10Backend",
    "SessionTokens",
    "WebAuthConfig",
    "WebAuthService",
    "sep10_middleware",
    "session_of",
]
