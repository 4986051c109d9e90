"""The SanctionsScreen port and its local-list adapter.

A list file is JSON: ``{"names": [...], "addresses": [...], "countries": [...]}``. Names
match without regard to case, accents, punctuation or word order; a name one letter off a
listed one (or a listed name inside a longer one) is a near match and waits for an operator.
The file is read again whenever it changes on disk. Or an HTTP screening service.
"""

from __future__ import annotations

import json
import os
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from gateway.outbound.kyc_provider import signature_header

Outcome = Literal["ok", "denied", "pending", "error"]


@dataclass(frozen=True)
class Screening:
    outcome: Outcome
    reason: str | None = None


class SanctionsScreen(Protocol):
    async def screen(self, sender_info: dict[str, Any] | None) -> Screening: ...


def name_tokens(text: str) -> tuple[str, ...]:
    """Case, accents, punctuation and word order removed: ("dobbs", "aldi")."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    words = "".join(ch if ch.isalnum() else " " for ch in plain).split()
    return tuple(sorted(words))


def _one_edit_apart(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _near(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if len(a) == len(b):
        return all(_one_edit_apart(x, y) for x, y in zip(a, b, strict=True))
    small, big = (set(a), set(b)) if len(a) < len(b) else (set(b), set(a))
    return len(small) >= 2 and small <= big


def sender_name(info: dict[str, Any]) -> str:
    parts = [info.get(k) for k in ("first_name", "middle_name", "last_name")]
    joined = " ".join(p for p in parts if isinstance(p, str) and p)
    name = info.get("name")
    return joined or (name if isinstance(name, str) else "")


@dataclass(frozen=True)
class _List:
    names: tuple[tuple[str, ...], ...]
    addresses: frozenset[tuple[str, ...]]
    countries: frozenset[str]


class LocalListScreen:
    def __init__(self, path: Path | None):
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._list = _List((), frozenset(), frozenset())

    def _current(self) -> _List:
        if self._path is None:
            return self._list
        st = os.stat(self._path)  # a list that cannot be read is an error, never "all clear"
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            self._list = _List(
                tuple(name_tokens(n) for n in raw.get("names", ()) if name_tokens(n)),
                frozenset(name_tokens(a) for a in raw.get("addresses", ())),
                frozenset(c.strip().upper() for c in raw.get("countries", ())),
            )
            self._stamp = stamp
        return self._list

    async def screen(self, sender_info: dict[str, Any] | None) -> Screening:
        if not sender_info:
            return Screening("error", "attachment: transaction.sender_info is required")
        try:
            listed = self._current()
        except (OSError, ValueError, AttributeError, TypeError):
            # Our fault, not the sender's: an operator looks, the sender asks again later.
            return Screening("pending", "the sanctions list cannot be read")
        name = name_tokens(sender_name(sender_info))
        if not name:
            return Screening("error", "sender_info: a name is required for screening")
        country = sender_info.get("country") or sender_info.get("address_country_code")
        if isinstance(country, str) and country.strip().upper() in listed.countries:
            return Screening("denied", "the sender's country is sanctioned")
        address = sender_info.get("address")
        if isinstance(address, str) and name_tokens(address) in listed.addresses:
            return Screening("denied", "the sender's address is listed")
        if name in listed.names:
            return Screening("denied", "the sender's name is listed")
        if any(_near(name, entry) for entry in listed.names):
            return Screening("pending", "the sender's name is close to a listed one")
        return Screening("ok")


class HttpSanctionsScreen:
    """An external screening service. Request: POST JSON ``{"sender_info": {...}}`` with
    ``X-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``. Answer:
    ``{"outcome": "ok" | "denied" | "pending", "reason": "..."}``. No usable answer in time
    holds the request for an operator (pending): the sender asks again later."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str,
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        self._client = client
        self._url = url
        self._secret = secret.encode()
        self._timeout = timeout
        self._clock = clock

    async def screen(self, sender_info: dict[str, Any] | None) -> Screening:
        if not sender_info:
            return Screening("error", "attachment: transaction.sender_info is required")
        body = json.dumps({"sender_info": sender_info}, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Gateway-Signature": signature_header(self._secret, body, int(self._clock())),
        }
        try:
            response = await self._client.post(
                self._url, content=body, headers=headers, timeout=self._timeout
            )
            answer = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            answer = None
        outcome = answer.get("outcome") if isinstance(answer, dict) else None
        if outcome not in ("ok", "denied", "pending"):
            return Screening("pending", "the screening service gave no usable answer")
        reason = answer.get("reason") if isinstance(answer, dict) else None
        return Screening(outcome, str(reason)[:512] if reason else None)
