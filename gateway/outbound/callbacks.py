"""The port to other organizations' callback endpoints (SEP-12 and SEP-31 status callbacks),
with its httpx adapter. Callback URLs come from clients, so the adapter's client must be the
guarded one (public addresses only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from gateway.errors import UpstreamError


class CallbackFailed(UpstreamError):
    default_message = "The callback endpoint could not be reached"


class CallbackEndpoints(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` to ``url``; the HTTP status, or CallbackFailed when none came."""


class HttpxCallbackEndpoints:
    def __init__(self, client: httpx.AsyncClient):
        self._client = client

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            # Only the status matters: the answer's body is never read (it may be huge).
            async with self._client.stream(
                "POST",
                url,
                content=body,
                headers={"Content-Type": "application/json", **headers},
                follow_redirects=False,
            ) as response:
                return response.status_code
        except httpx.HTTPError as exc:
            raise CallbackFailed(detail=type(exc).__name__) from exc


def check_callback_url(url: object, insecure_hosts: frozenset[str], field: str = "url") -> str:
    """A client's callback URL: absolute https without credentials (http only for the
    testnet's allow-listed hosts). The guarded client still refuses private addresses."""
    from urllib.parse import urlsplit

    from gateway.errors import InvalidField

    if not isinstance(url, str) or not url:
        raise InvalidField(field, "is required")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if len(url) > 2048 or not host or "@" in parts.netloc:
        raise InvalidField(field, "must be an absolute https URL")
    if host in insecure_hosts:
        if parts.scheme in ("https", "http"):
            return url
    elif _is_local(host):
        # Refused here for a clear answer; the guarded client checks resolved names too.
        raise InvalidField(field, "must not point to a local or private address")
    if parts.scheme == "https":
        return url
    raise InvalidField(field, "must use https")


def _is_local(host: str) -> bool:
    import ipaddress

    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global
