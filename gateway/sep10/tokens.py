"""SEP-10 session JWTs (HS256): issued after a verified challenge, read on protected routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jwt
from starlette.authentication import BaseUser

from gateway.errors import AuthenticationFailed
from gateway.types import ClientIdentity

ALGORITHM = "HS256"
_REQUIRED = ["iss", "sub", "iat", "exp", "jti"]
_LEEWAY = 5  # seconds of clock skew tolerated


@dataclass(frozen=True)
class AuthSession(BaseUser):
    """An authenticated SEP-10 session, as other SEP packages see it (``request.user``)."""

    client: ClientIdentity
    client_domain: str | None
    home_domain: str | None
    jti: str
    issued_at: int
    expires_at: int

    @property
    def account(self) -> str:
        return self.client.account

    @property
    def memo(self) -> str | None:
        return self.client.memo

    @property
    def sub(self) -> str:
        return self.client.sub

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.sub

    @property
    def identity(self) -> str:
        return self.sub


class SessionTokens:
    """Mints and checks this server's session tokens.

    ``issuer`` is our WEB_AUTH_ENDPOINT; ``network`` ties a token to one Stellar network so a
    testnet token never opens a mainnet server sharing a secret by mistake.
    """

    def __init__(
        self,
        secret: str,
        *,
        issuer: str,
        network: str,
        lifetime: int,
        clock: Callable[[], float],
    ):
        self._secret = secret
        self._issuer = issuer
        self._network = network
        self._lifetime = lifetime
        self._clock = clock

    def issue(
        self,
        identity: ClientIdentity,
        *,
        jti: str,
        client_domain: str | None,
        home_domain: str | None,
    ) -> str:
        now = int(self._clock())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "sub": identity.sub,
            "iat": now,
            "exp": now + self._lifetime,
            "jti": jti,
            "network": self._network,
        }
        if client_domain:
            claims["client_domain"] = client_domain
        if home_domain:
            claims["home_domain"] = home_domain
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def read(self, token: str) -> AuthSession:
        """The session a token carries; AuthenticationFailed when it is not one of ours,
        expired, or malformed."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                # Times are checked below against the injected clock.
                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise AuthenticationFailed("Invalid token") from None
        if claims.get("network") != self._network:
            raise AuthenticationFailed("Invalid token")
        client_domain = claims.get("client_domain")
        home_domain = claims.get("home_domain")
        iat, exp = claims["iat"], claims["exp"]
        if (
            not isinstance(claims["sub"], str)
            or not isinstance(claims["jti"], str)
            or not isinstance(iat, int)
            or not isinstance(exp, int)
            or (client_domain is not None and not isinstance(client_domain, str))
            or (home_domain is not None and not isinstance(home_domain, str))
        ):
            raise AuthenticationFailed("Invalid token")
        now = self._clock()
        if exp <= now - _LEEWAY:
            raise AuthenticationFailed("Token has expired")
        if iat > now + _LEEWAY:
            raise AuthenticationFailed("Invalid token")
        try:
            identity = ClientIdentity.from_sub(claims["sub"])
        except ValueError:
            raise AuthenticationFailed("Invalid token") from None
        return AuthSession(
            client=identity,
            client_domain=client_domain,
            home_domain=home_domain,
            jti=claims["jti"],
            issued_at=iat,
            expires_at=exp,
        )
