"""The port to other organizations' stellar.toml files (SEP-1), with its httpx adapter.

Rules: https only (http only for allow-listed test hosts), no redirects, a size cap, a
positive cache with a TTL and a short negative cache; concurrent fetches of one domain share
one request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import httpx
from stellar_sdk import StrKey

from gateway.errors import RemoteTomlError

_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?::\d{1,5})?$"
)


class StellarTomls(Protocol):
    async def fetch(self, domain: str) -> Mapping[str, Any]:
        """The parsed stellar.toml of ``domain``; RemoteTomlError when it cannot be used."""


def normalize_domain(domain: str) -> str:
    """Lower-case ``host[:port]``; RemoteTomlError for anything else (paths, schemes, ...)."""
    d = domain.strip().lower().rstrip(".")
    if not _DOMAIN_RE.match(d):
        raise RemoteTomlError(f"{domain[:80]!r} is not a domain name")
    return d


def signing_key_of(toml: Mapping[str, Any], domain: str) -> str:
    key = toml.get("SIGNING_KEY")
    if not isinstance(key, str) or not StrKey.is_valid_ed25519_public_key(key):
        raise RemoteTomlError(f"stellar.toml of {domain} has no valid SIGNING_KEY")
    return key


def _host(domain: str) -> str:
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HttpxStellarTomls:
    """Fetches ``https://<domain>/.well-known/stellar.toml`` through an injected client.

    The client should use ``GuardedTransport`` so private addresses are refused at connect.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        insecure_hosts: Iterable[str] = (),
        max_bytes: int = 100_000,
        cache_seconds: float = 300,
        negative_cache_seconds: float = 30,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client = client
        self._insecure = frozenset(h.lower() for h in insecure_hosts)
        self._max_bytes = max_bytes
        self._ttl = cache_seconds
        self._negative_ttl = negative_cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Mapping[str, Any] | RemoteTomlError]] = {}
        self._inflight: dict[str, asyncio.Future[Mapping[str, Any]]] = {}

    async def fetch(self, domain: str) -> Mapping[str, Any]:
        d = normalize_domain(domain)
        cached = self._cache.get(d)
        if cached is not None and cached[0] > self._clock():
            if isinstance(cached[1], RemoteTomlError):
                raise RemoteTomlError(cached[1].message)
            return cached[1]
        pending = self._inflight.get(d)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[d] = future
        try:
            toml = await self._download(d)
        except RemoteTomlError as exc:
            self._cache[d] = (self._clock() + self._negative_ttl, exc)
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        except BaseException:
            future.set_exception(RemoteTomlError(f"stellar.toml of {d} could not be fetched"))
            future.exception()
            raise
        else:
            self._cache[d] = (self._clock() + self._ttl, toml)
            future.set_result(toml)
            return toml
        finally:
            self._inflight.pop(d, None)

    async def _download(self, domain: str) -> Mapping[str, Any]:
        host = _host(domain)
        insecure = host in self._insecure
        if _is_ip(host) and not insecure:
            raise RemoteTomlError(f"{domain} is an IP address, not a domain name")
        scheme = "http" if insecure else "https"
        url = f"{scheme}://{domain}/.well-known/stellar.toml"
        failure = f"stellar.toml of {domain} could not be fetched"
        try:
            async with self._client.stream("GET", url, follow_redirects=False) as response:
                if response.is_redirect:
                    raise RemoteTomlError(f"{failure}: redirects are not followed")
                if response.status_code != 200:
                    raise RemoteTomlError(f"{failure}: HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > self._max_bytes:
                        raise RemoteTomlError(f"{failure}: larger than {self._max_bytes} bytes")
        except httpx.HTTPError as exc:
            raise RemoteTomlError(failure) from exc
        try:
            parsed = tomllib.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RemoteTomlError(f"stellar.toml of {domain} is not valid TOML") from exc
        return parsed
