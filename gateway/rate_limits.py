"""Rate limits on the paths that cost the most or could be used to guess: SEP-10 challenges,
SEP-3 compliance requests, SEP-12 PUTs and the operator API (where every request presents a
key). Each rule has a limit per client IP and one per caller: the account a challenge is
asked for, or the bearer token (session or operator key) a request carries -- kept as a
hash, never as the token.

Token buckets in this process: each allows ``limit`` requests a minute with bursts of up to
``limit``. Behind a proxy the client IP is what the ASGI server reports (uvicorn's
``--forwarded-allow-ips``). A refused request answers 429 with ``Retry-After`` and changes
nothing.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from gateway.edge import ASGIApp, Receive, Scope, Send
from gateway.errors import RateLimited, error_response

MAX_KEYS = 100_000  # buckets kept; the least recently used go first


@dataclass(frozen=True)
class Rule:
    name: str
    method: str | None  # None: any
    prefix: str
    per_ip: int  # requests a minute; 0: no limit
    per_caller: int
    caller: Callable[[Scope], str | None]

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return path == self.prefix or path.startswith(self.prefix + "/")


def bearer_caller(scope: Scope) -> str | None:
    """The hash of the request's bearer token, if it has one."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return hashlib.sha256(token.strip()).hexdigest()[:32]
    return None


def account_caller(scope: Scope) -> str | None:
    """The account a SEP-10 challenge is asked for."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    accounts = query.get("account")
    return accounts[0][:69] if accounts else None


class Buckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._state: OrderedDict[tuple[str, ...], tuple[float, float]] = OrderedDict()

    def take(self, key: tuple[str, ...], per_minute: int) -> float:
        """0 when a request may go now (and it is counted), else the seconds to wait."""
        now = self._clock()
        rate = per_minute / 60.0
        tokens, at = self._state.pop(key, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - at) * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        self._state[key] = (tokens, now)
        while len(self._state) > MAX_KEYS:
            self._state.popitem(last=False)
        return wait


class RateLimits:
    """Pure-ASGI middleware applying ``rules`` (the first that matches a request)."""

    def __init__(self, app: ASGIApp, *, rules: list[Rule], buckets: Buckets | None = None):
        self.app = app
        self.rules = rules
        self.buckets = buckets or Buckets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] != "OPTIONS":
            wait = self._wait(scope)
            if wait:
                error = RateLimited(math.ceil(wait), "Too many requests; try again later")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _wait(self, scope: Scope) -> float:
        method, path = scope["method"], scope["path"]
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            waits = []
            client = scope.get("client")
            if rule.per_ip and client:
                waits.append(self.buckets.take((rule.name, "ip", client[0]), rule.per_ip))
            caller = rule.caller(scope) if rule.per_caller else None
            if caller is not None:
                waits.append(self.buckets.take((rule.name, "caller", caller), rule.per_caller))
            return max(waits, default=0.0)
        return 0.0
