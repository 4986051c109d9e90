"""Small helpers the benchmark scripts share."""

from __future__ import annotations

import base64
import secrets
import socket

from stellar_sdk import Keypair


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_secrets() -> dict[str, str]:
    """New signing, JWT and KYC secrets for one run, as GATEWAY_* variables."""
    return {
        "GATEWAY_SIGNING_SECRET": Keypair.random().secret,
        "GATEWAY_JWT_SECRET": secrets.token_urlsafe(48),
        "GATEWAY_KYC_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
