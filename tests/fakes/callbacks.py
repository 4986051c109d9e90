"""A callback receiver that records what it is sent and answers what the test says."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stellar_sdk import Keypair

from gateway.outbound.callbacks import CallbackFailed


@dataclass
class Received:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeCallbackEndpoints:
    received: list[Received] = field(default_factory=list)
    answers: list[int | Exception] = field(default_factory=list)  # consumed first to last

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.received.append(Received(url, body, dict(headers)))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise CallbackFailed(detail=str(answer))
            return answer
        return 200


@dataclass
class SentCode:
    channel: str
    destination: str
    code: str
    customer_id: str


@dataclass
class FakeNotifier:
    sent: list[SentCode] = field(default_factory=list)

    async def send_code(self, channel: str, destination: str, code: str, customer_id: str) -> None:
        self.sent.append(SentCode(channel, destination, code, customer_id))

    def last_code(self, destination: str) -> str:
        return next(s.code for s in reversed(self.sent) if s.destination == destination)


def verify_signature(gateway: Any, received: Received, url: str) -> int:
    """Check a callback's Signature header with stellar-sdk as a wallet would; returns t."""
    header = received.headers["Signature"]
    assert received.headers["X-Stellar-Signature"] == header
    match = re.fullmatch(r"t=(\d+), s=(\S+)", header)
    assert match, header
    t, s = match.group(1), match.group(2)
    host = url.split("://", 1)[1].split("/", 1)[0]
    payload = f"{t}.{host}.".encode() + received.body
    # raises BadSignatureError when it does not verify
    Keypair.from_public_key(gateway.server_key).verify(payload, base64.b64decode(s))
    return int(t)
