"""The port to the operator's KYC provider, and its httpx adapter.

Request: POST JSON ``{"review_id", "customer_id", "type", "fields": {name: value},
"files": [{"field", "content_type", "content_base64"}]}`` with ``X-Gateway-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (the provider's shared secret) and
``Idempotency-Key: <review_id>``. Answer: ``{"status": "ACCEPTED" | "REJECTED" | "PROCESSING"
| "NEEDS_INFO", "message": "...", "rejected_fields": {name: reason}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from gateway.errors import UpstreamError

DECISIONS = ("ACCEPTED", "REJECTED", "PROCESSING", "NEEDS_INFO")


class KycProviderUnavailable(UpstreamError):
    default_message = "The KYC provider did not give a usable answer"


@dataclass(frozen=True)
class ReviewRequest:
    review_id: str
    customer_id: str
    type: str
    fields: Mapping[str, str]
    files: tuple[tuple[str, str, bytes], ...] = ()  # (field, content type, bytes)


@dataclass(frozen=True)
class ReviewDecision:
    status: str
    message: str | None = None
    rejected_fields: Mapping[str, str] = field(default_factory=dict)


class KycProvider(Protocol):
    async def review(self, request: ReviewRequest) -> ReviewDecision:
        """The provider's decision; KycProviderUnavailable when it gave none."""


def signature_header(secret: bytes, body: bytes, now: int) -> str:
    digest = hmac.new(secret, f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={now},v1={digest}"


class HttpxKycProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str,
        *,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ):
        self._client = client
        self._url = url
        self._secret = secret.encode()
        self._timeout = timeout
        self._clock = clock

    async def review(self, request: ReviewRequest) -> ReviewDecision:
        import base64

        payload: dict[str, Any] = {
            "review_id": request.review_id,
            "customer_id": request.customer_id,
            "type": request.type,
            "fields": dict(request.fields),
            "files": [
                {"field": f, "content_type": t, "content_base64": base64.b64encode(b).decode()}
                for f, t, b in request.files
            ],
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": request.review_id,
            "X-Gateway-Signature": signature_header(self._secret, body, int(self._clock())),
        }
        try:
            response = await self._client.post(
                self._url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise KycProviderUnavailable(detail=type(exc).__name__) from exc
        if response.status_code != 200:
            raise KycProviderUnavailable(detail=f"HTTP {response.status_code}")
        try:
            answer = response.json()
            status = answer["status"]
            message = answer.get("message")
            rejected = answer.get("rejected_fields") or {}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KycProviderUnavailable(detail="unreadable answer") from exc
        if status not in DECISIONS or not isinstance(rejected, dict):
            raise KycProviderUnavailable(detail="unknown status")
        return ReviewDecision(
            status=status,
            message=str(message)[:512] if message else None,
            rejected_fields={str(k): str(v)[:256] for k, v in rejected.items()},
        )
