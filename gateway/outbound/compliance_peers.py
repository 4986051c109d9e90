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


class HttpxCompliancePeers:
    def __init__(self, client: httpx.AsyncClient, *, insecure_hosts: Iterable[str] = ()):
        self._client = client
        self._insecure = frozenset(h.lower() for h in insecure_hosts)

    def _check(self, url: str, what: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or (
            parts.scheme != "https" and not (parts.scheme == "http" and host in self._insecure)
        ):
            raise PeerError(f"{what} {url[:100]!r} is not an https URL")

    async def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        body = await response.aread()
        if len(body) > MAX_ANSWER_BYTES:
            raise PeerError(f"{what} answered more than {MAX_ANSWER_BYTES} bytes")
        try:
            parsed = json.loads(body)
        except ValueError:
            raise PeerError(f"{what} did not answer JSON (HTTP {response.status_code})") from None
        if not isinstance(parsed, dict):
            raise PeerError(f"{what} did not answer a JSON object")
        return parsed

    async def resolve(self, federation_server: str, address: str) -> dict[str, Any]:
        self._check(federation_server, "FEDERATION_SERVER")
        try:
            response = await self._client.get(
                federation_server, params={"type": "name", "q": address}
            )
        except httpx.HTTPError:
            raise PeerError(f"the federation server of {address} cannot be reached") from None
        if response.status_code == 404:
            raise PeerError(f"{address} is not known to its federation server")
        if response.status_code != 200:
            raise PeerError(f"the federation server answered HTTP {response.status_code}")
        return await self._json(response, "the federation server")

    async def post_auth(self, auth_server: str, data: str, sig: str) -> tuple[int, dict[str, Any]]:
        self._check(auth_server, "AUTH_SERVER")
        try:
            response = await self._client.post(auth_server, data={"data": data, "sig": sig})
        except httpx.HTTPError:
            raise PeerError("the AUTH_SERVER cannot be reached") from None
        return response.status_code, await self._json(response, "the AUTH_SERVER")
