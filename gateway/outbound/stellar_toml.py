"""The port to other organizations' stellar.toml files (SEP-1), with its httpx adapter.

Rules: https only (http only for allow-listed test hosts) on the default port, no redirects,
no compressed bodies, a size cap, one deadline for the whole fetch, a bounded positive cache
with a TTL and a short negative cache; concurrent fetches of one domain share one request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import httpx
from stellar_sdk import StrKey

from gateway.errors import RemoteTomlError

_DOMAIN_RE = re.compile(
    r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?::\d{1,5})?"
)
MAX_CACHED_DOMAINS = 1024
MAX_CONCURRENT_FETCHES = 16


class StellarTomls(Protocol):
    async def fetch(self, domain: str) -> Mapping[str, Any]:
        """The parsed stellar.toml of ``domain``; RemoteTomlError when it cannot be used."""


def normalize_domain(domain: str) -> str:
    """Lower-case ``host[:port]``; RemoteTomlError for anything else (paths, schemes, ...)."""
    d = domain.strip().lower().rstrip(".")
    if not _DOMAIN_RE.fullmatch(d):
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
        timeout_seconds: float = 10.0,
        cache_seconds: float = 300,
        negative_cache_seconds: float = 30,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client = client
        self._insecure = frozenset(h.lower() for h in insecure_hosts)
        self._max_bytes = max_bytes
        self._timeout = timeout_seconds
        self._ttl = cache_seconds
        self._negative_ttl = negative_cache_seconds
        self._clock = clock
        # domain -> (expires, parsed toml | failure message); least recently used first.
        self._cache: OrderedDict[str, tuple[float, Mapping[str, Any] | str]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Mapping[str, Any]]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

    async def fetch(self, domain: str) -> Mapping[str, Any]:
        d = normalize_domain(domain)
        cached = self._cache.get(d)
        if cached is not None and cached[0] > self._clock():
            self._cache.move_to_end(d)
            if isinstance(cached[1], str):
                raise RemoteTomlError(cached[1])
            return cached[1]
        pending = self._inflight.get(d)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[d] = future
        try:
            async with self._slots:
                toml = await self._download(d)
        except RemoteTomlError as exc:
            self._remember(d, self._negative_ttl, exc.message)
            future.set_exception(RemoteTomlError(exc.message))
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        except BaseException:
            future.set_exception(RemoteTomlError(f"stellar.toml of {d} could not be fetched"))
            future.exception()
            raise
        else:
            self._remember(d, self._ttl, toml)
            future.set_result(toml)
            return toml
        finally:
            self._inflight.pop(d, None)

    def _remember(self, domain: str, ttl: float, value: Mapping[str, Any] | str) -> None:
        self._cache[domain] = (self._clock() + ttl, value)
        self._cache.move_to_end(domain)
        while len(self._cache) > MAX_CACHED_DOMAINS:
            self._cache.popitem(last=False)

    async def _download(self, domain: str) -> Mapping[str, Any]:
        host = _host(domain)
        insecure = host in self._insecure
        if _is_ip(host) and not insecure:
            raise RemoteTomlError(f"{domain} is an IP address, not a domain name")
        if ":" in domain and not insecure and not domain.endswith(":443"):
            raise RemoteTomlError(f"{domain}: stellar.toml is served on the default https port")
        scheme = "http" if insecure else "https"
        url = f"{scheme}://{domain}/.well-known/stellar.toml"
        failure = f"stellar.toml of {domain} could not be fetched"
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._read(url, failure)
        except TimeoutError:
            raise RemoteTomlError(failure, detail="deadline passed") from None
        except httpx.HTTPError as exc:
            raise RemoteTomlError(failure, detail=type(exc).__name__) from exc
        try:
            parsed = tomllib.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
            raise RemoteTomlError(f"stellar.toml of {domain} is not valid TOML") from exc
        return parsed

    async def _read(self, url: str, failure: str) -> bytes:
        headers = {"Accept-Encoding": "identity"}  # a compressed body could unpack past the cap
        async with self._client.stream(
            "GET", url, headers=headers, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                # One message for every refusal, so answers cannot be told apart (port probes).
                raise RemoteTomlError(failure, detail=f"HTTP {response.status_code}")
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                raise RemoteTomlError(failure, detail="compressed body")
            body = bytearray()
            async for chunk in response.aiter_bytes():  # identity: no decoding happens
                body.extend(chunk)
                if len(body) > self._max_bytes:
                    raise RemoteTomlError(f"{failure}: larger than {self._max_bytes} bytes")
            return bytes(body)
