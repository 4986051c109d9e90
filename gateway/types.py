"""Value objects shared by every SEP package: account ids, memo ids, session identities."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from stellar_sdk import MuxedAccount, StrKey

from gateway.errors import InvalidField

UINT64_MAX = 2**64 - 1
_DIGITS = re.compile(r"^[0-9]{1,20}$")


def parse_account_id(value: object, field: str = "account") -> str:
    """A ``G...`` account id, or InvalidField naming ``field``."""
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "is required")
    if not StrKey.is_valid_ed25519_public_key(value):
        raise InvalidField(field, "must be a valid G... Stellar account id")
    return value


def parse_account_or_muxed(value: object, field: str = "account") -> str:
    """A ``G...`` or ``M...`` account, or InvalidField naming ``field``."""
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "is required")
    if value.startswith("M"):
        if not StrKey.is_valid_med25519_public_key(value):
            raise InvalidField(field, "must be a valid G... or M... Stellar account")
        return value
    if not StrKey.is_valid_ed25519_public_key(value):
        raise InvalidField(field, "must be a valid G... or M... Stellar account")
    return value


def parse_memo_id(value: object, field: str = "memo") -> int:
    """A positive uint64 ID memo given as decimal text."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _DIGITS.match(text):
        raise InvalidField(field, "must be a positive integer (an ID memo)")
    number = int(text)
    if number == 0 or number > UINT64_MAX:
        raise InvalidField(field, "must be between 1 and 18446744073709551615")
    return number


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who a SEP-10 session speaks for: a G account, optionally narrowed by an ID memo or
    given as a muxed M account (whose id then plays the memo's role)."""

    account: str
    memo: str | None = None
    muxed: str | None = None

    @classmethod
    def from_challenge(cls, client_account: str, memo: int | None) -> ClientIdentity:
        if client_account.startswith("M"):
            m = MuxedAccount.from_account(client_account)
            return cls(account=m.account_id, memo=str(m.account_muxed_id), muxed=client_account)
        return cls(account=client_account, memo=None if memo is None else str(memo))

    @classmethod
    def from_sub(cls, sub: str) -> ClientIdentity:
        """Parse a JWT ``sub``: ``G...``, ``G...:<memo>`` or ``M...``; ValueError otherwise."""
        if sub.startswith("M"):
            if not StrKey.is_valid_med25519_public_key(sub):
                raise ValueError("bad muxed account")
            return cls.from_challenge(sub, None)
        account, sep, memo = sub.partition(":")
        if not StrKey.is_valid_ed25519_public_key(account):
            raise ValueError("bad account")
        if sep:
            if not _DIGITS.match(memo) or not 0 < int(memo) <= UINT64_MAX:
                raise ValueError("bad memo")
            return cls(account=account, memo=str(int(memo)))
        return cls(account=account)

    @property
    def sub(self) -> str:
        if self.muxed:
            return self.muxed
        return f"{self.account}:{self.memo}" if self.memo else self.account


# -- amounts ------------------------------------------------------------------------------------
# Money is Decimal at the edges and integer stroops (10^-7) in storage and arithmetic.

STROOPS_PER_UNIT = 10_000_000
MAX_AMOUNT = Decimal("922337203685.4775807")  # 2**63 - 1 stroops
_AMOUNT_TEXT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,7})?")


def parse_amount(value: object, field: str, decimals: int = 7) -> Decimal:
    """A positive amount with at most ``decimals`` places, from a JSON number or string."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise InvalidField(field, "must be a number")
    text = format(value, "f") if isinstance(value, Decimal) else str(value).strip()
    if isinstance(value, float):
        text = repr(value)
    if "." in text:
        text = text.rstrip("0").rstrip(".") or "0"
    if not _AMOUNT_TEXT.fullmatch(text):
        raise InvalidField(field, "must be a positive decimal number with at most 7 decimals")
    amount = Decimal(text)
    if amount <= 0:
        raise InvalidField(field, "must be greater than zero")
    if amount > MAX_AMOUNT:
        raise InvalidField(field, f"must be at most {MAX_AMOUNT} (Stellar's largest amount)")
    if amount != amount.quantize(Decimal(1).scaleb(-decimals)):
        raise InvalidField(field, f"must have at most {decimals} decimals")
    return amount


def to_stroops(amount: Decimal) -> int:
    stroops = amount * STROOPS_PER_UNIT
    if stroops != stroops.to_integral_value():
        raise ValueError("amount has more than 7 decimals")
    return int(stroops)


def format_stroops(stroops: int, decimals: int = 7) -> str:
    """An amount as SEP-31 strings carry it, e.g. 12.50 for decimals=2."""
    value = Decimal(stroops) / STROOPS_PER_UNIT
    return str(value.quantize(Decimal(1).scaleb(-decimals)))


def normalize_memo(memo: object, kind: object, field: str = "memo") -> str:
    """The canonical text of a memo of type ``kind`` (id, text or hash; hash as base64)."""
    import base64
    import binascii

    text = str(memo)
    if kind != "text":
        text = text.strip()  # a text memo is sent back exactly as given
    if kind == "id":
        if not _DIGITS.fullmatch(text) or not 0 < int(text) <= UINT64_MAX:
            raise InvalidField(field, "must be a positive integer (memo_type id)")
        return str(int(text))
    if kind == "text":
        if len(text.encode()) > 28:
            raise InvalidField(field, "a text memo is at most 28 bytes")
        return text
    if kind == "hash":
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise InvalidField(field, "a hash memo is 32 bytes in base64")
        return base64.b64encode(raw).decode()
    raise InvalidField(f"{field}_type", "must be id, text or hash")
