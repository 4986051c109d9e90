"""The port to other institutions' SEP-2 and SEP-3 servers (when we send), with its httpx
adapter: https only (http for allow-listed test hosts), no redirects, a size cap, JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from gateway.errors import UpstreamError

MAX_ANSWER_BYTES = 100_000


class PeerError(UpstreamError):
    """Another institution's server could not be used (unreachable, refused, malformed)."""

    status = 502
    default_message = "the other institution's server could not be used"


class CompliancePeers(Protocol):
    async def resolve(self, federation_server: str, address: str) -> dict[str, Any]:
        """The SEP-2 record of ``address`` (type=name)."""

    async def post_auth(self, auth_server: str, data: str, sig: str) -> tuple[int, dict[str, Any]]:
        """POST a SEP-3 request; the HTTP status and the JSON answer."""


def check_url(url: object, what: str, insecure_hosts: Iterable[str] = ()) -> str:
    """An https URL (http only for allow-listed hosts); PeerError for anything else."""
    if not isinstance(url, str) or len(url) > 512 or not url.isprintable():
        raise PeerError(f"{what} is not a usable URL")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise PeerError(f"{what} is not a usable URL") from None
    plain_ok = parts.scheme == "http" and host in {h.lower() for h in insecure_hosts}
    if not host or (parts.scheme != "https" and not plain_ok):
        raise PeerError(f"{what} is not an https URL")
    return url


class HttpxCompliancePeers:
    def __init__(self, client: httpx.AsyncClient, *, insecure_hosts: Iterable[str] = ()):
        self._client = client
        self._insecure = frozenset(h.lower() for h in insecure_hosts)

    async def _call(
        self, what: str, method: str, url: str, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        """One request, its body read up to the cap (never decompressed); JSON object."""
        check_url(url, what, self._insecure)
        try:
            async with self._client.stream(
                method, url, headers={"Accept-Encoding": "identity"}, **kwargs
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise PeerError(f"{what} answered more than {MAX_ANSWER_BYTES} bytes")
                status = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL):
            raise PeerError(f"{what} cannot be reached") from None
        try:
            parsed = json.loads(bytes(body))
        except ValueError:
            raise PeerError(f"{what} did not answer JSON (HTTP {status})") from None
        if not isinstance(parsed, dict):
            raise PeerError(f"{what} did not answer a JSON object")
        return status, parsed

    async def resolve(self, federation_server: str, address: str) -> dict[str, Any]:
        status, record = await self._call(
            "the receiver's FEDERATION_SERVER",
            "GET",
            federation_server,
            params={"type": "name", "q": address},
        )
        if status == 404:
            raise PeerError("the receiver is not known to its federation server")
        if status != 200:
            raise PeerError(f"the receiver's federation server answered HTTP {status}")
        return record

    async def post_auth(self, auth_server: str, data: str, sig: str) -> tuple[int, dict[str, Any]]:
        return await self._call(
            "the receiver's AUTH_SERVER", "POST", auth_server, data={"data": data, "sig": sig}
        )
