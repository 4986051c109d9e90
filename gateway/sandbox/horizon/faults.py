"""Fault injection: the runtime rules, the injector that matches requests against them, and
the ASGI middleware that makes Horizon's routes misbehave accordingly."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.sandbox.horizon.entries import JSON
from gateway.sandbox.horizon.ledger import FakeLedger
from gateway.sandbox.horizon.problems import status_problem, submission_timeout_problem
from gateway.sandbox.horizon.web import _respond, _Settings

# Request header set by FakeHorizonTransport, and response header the app answers it with.
TRANSPORT_HEADER = "x-fake-horizon-transport"
FAULT_HEADER = "x-fake-horizon-fault"

FaultMode = Literal["status", "timeout", "lost_answer"]
_MODES = ("status", "timeout", "lost_answer")


@dataclass(slots=True)
class FaultRule:
    """One fault: requests matching ``method`` and the ``path`` prefix misbehave.

    ``count`` limits it to the next N matching requests, ``probability`` makes each matching
    request misbehave with that chance (both may be combined; neither means always).
    ``status`` is the HTTP status for ``status`` mode, and for ``lost_answer`` the status
    answered after applying the request (None: the client times out instead).
    """

    mode: FaultMode
    method: str = "*"
    path: str = "/"
    status: int | None = None
    count: int | None = None
    probability: float | None = None
    retry_after: int | None = None
    delay: float | None = None
    id: int = 0
    hits: int = 0

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "mode": self.mode,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "count": self.count,
            "probability": self.probability,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "hits": self.hits,
        }


class FaultInjector:
    """The runtime fault rules, first match wins; probabilities draw from a seeded RNG."""

    def __init__(self, seed: int | None = 0):
        self.rules: list[FaultRule] = []
        self._next_id = 1
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random draws from ``seed`` so probabilistic runs repeat exactly."""
        self._random = random.Random(seed)  # noqa: S311 - fault sampling, not cryptography

    def add(
        self,
        mode: str,
        *,
        method: str = "*",
        path: str = "/",
        status: int | None = None,
        count: int | None = None,
        probability: float | None = None,
        retry_after: int | None = None,
        delay: float | None = None,
    ) -> FaultRule:
        """Add a rule (see FaultRule); ``status`` mode defaults to 503."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}")
        if mode == "status" and status is None:
            status = 503
        if status is not None and not 400 <= int(status) <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        if count is not None and int(count) < 0:
            raise ValueError("count must not be negative")
        if probability is not None and not 0.0 <= float(probability) <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        if path.startswith("/_fake"):
            raise ValueError("admin paths cannot be faulted")
        rule = FaultRule(
            mode=cast(FaultMode, mode),
            method=method.upper(),
            path=path,
            status=None if status is None else int(status),
            count=None if count is None else int(count),
            probability=None if probability is None else float(probability),
            retry_after=None if retry_after is None else int(retry_after),
            delay=None if delay is None else float(delay),
            id=self._next_id,
        )
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        """Drop one rule; False when there was none with that id."""
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def clear(self) -> None:
        """Drop every rule."""
        self.rules.clear()

    def match(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, consuming one of its count, or None."""
        for rule in self.rules:
            if rule.method not in ("*", method.upper()) or not path.startswith(rule.path):
                continue
            if rule.count is not None and rule.count <= 0:
                continue
            if rule.probability is not None and self._random.random() >= rule.probability:
                continue
            if rule.count is not None:
                rule.count -= 1
            rule.hits += 1
            return rule
        return None


class _FaultMiddleware:
    """Applies the fault rules to Horizon's routes (never to ``/_fake/``)."""

    def __init__(
        self, app: ASGIApp, ledger: FakeLedger, faults: FaultInjector, settings: _Settings
    ):
        self.app = app
        self.ledger = ledger
        self.faults = faults
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_fake/"):
            await self.app(scope, receive, send)
            return
        rule = self.faults.match(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        in_process = any(name.decode().lower() == TRANSPORT_HEADER for name, _ in scope["headers"])
        if rule.mode == "lost_answer":

            async def discard(message: Message) -> None:
                return None

            await self.app(scope, _replay(body), discard)
            if rule.status is not None:
                await self._status(scope, rule, body, send)
            else:
                await self._timeout(scope, rule, body, receive, send, in_process)
        elif rule.mode == "timeout":
            await self._timeout(scope, rule, body, receive, send, in_process)
        else:
            await self._status(scope, rule, body, send)

    def _is_submission(self, scope: Scope) -> bool:
        return scope["method"] == "POST" and scope["path"].rstrip("/") == "/transactions"

    def _problem_for(self, scope: Scope, status: int, body: bytes) -> JSON:
        if status == 504 and self._is_submission(scope):
            envelope = _form_field(body, "tx")
            tx_hash = self.ledger.hash_of(envelope) if envelope else None
            return submission_timeout_problem(tx_hash, envelope)
        return status_problem(status)

    async def _status(self, scope: Scope, rule: FaultRule, body: bytes, send: Send) -> None:
        status = rule.status or 503
        headers: dict[str, str] = {}
        if status == 429:
            headers = {
                "Retry-After": str(rule.retry_after if rule.retry_after is not None else 1),
                "X-RateLimit-Limit": "3600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(rule.retry_after if rule.retry_after is not None else 1),
            }
        elif rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        response = _respond(status, self._problem_for(scope, status, body), headers)
        await response(scope, _replay(b""), send)

    async def _timeout(
        self,
        scope: Scope,
        rule: FaultRule,
        body: bytes,
        receive: Receive,
        send: Send,
        in_process: bool,
    ) -> None:
        headers = {}
        if in_process:
            # FakeHorizonTransport turns this marker into httpx.ReadTimeout without waiting.
            headers[FAULT_HEADER] = "timeout"
        else:
            delay = rule.delay if rule.delay is not None else self.settings.fault_timeout
            # A client that gave up has seen its timeout; stop holding the connection then.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_disconnected(receive), timeout=delay)
        response = _respond(504, self._problem_for(scope, 504, body), headers)
        await response(scope, _replay(b""), send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            # Never-ending requests would wait here; a finished one reports disconnect.
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _form_field(body: bytes, name: str) -> str | None:
    try:
        values = parse_qs(body.decode(), keep_blank_values=True).get(name)
    except UnicodeDecodeError:
        return None
    return values[0] if values else None
