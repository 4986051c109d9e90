"""An httpx transport for calls to other organizations' hosts that refuses private addresses.

The check runs where the socket is opened: the host is resolved once, every address must be a
public one (unless the host is allow-listed), and the connection goes to the vetted address,
so DNS rebinding between check and connect cannot reach an internal service. TLS still
verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class BlockedAddress(httpcore.ConnectError):
    """The host resolved to an address outside the public internet."""


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self, inner: httpcore.AsyncNetworkBackend, allowed_hosts: frozenset[str], resolver: Resolver
    ):
        self._inner = inner
        self._allowed = allowed_hosts
        self._resolve = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host.lower() in self._allowed:
            addresses = [host]
        else:
            try:
                addresses = await asyncio.wait_for(self._resolve(host, port), timeout)
            except (OSError, TimeoutError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}") from exc
            if not addresses or not all(is_public_address(a) for a in addresses):
                raise BlockedAddress(f"{host} resolves to a non-public address")
        failure: Exception | None = None
        for address in dict.fromkeys(addresses):  # each vetted address once, in order
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """AsyncHTTPTransport whose connections only reach public addresses or allowed hosts."""

    def __init__(
        self,
        allowed_hosts: Iterable[str] = (),
        resolver: Resolver = system_resolver,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        pool = self._pool
        pool._network_backend = _GuardedBackend(
            pool._network_backend, frozenset(h.lower() for h in allowed_hosts), resolver
        )
