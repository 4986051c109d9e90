"""Stroop arithmetic and the text forms Horizon writes: 7-decimal amounts, ISO timestamps,
paging ids and asset labels."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

STROOPS_PER_UNIT = 10_000_000
INT64_MAX = 2**63 - 1


def to_stroops(value: Decimal | int | str) -> int:
    """Exact stroops for an amount in units (Decimal, int or decimal text); never a float."""
    if isinstance(value, bool | float):
        raise TypeError("amounts must be Decimal, int or decimal text, never float")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    stroops = amount * STROOPS_PER_UNIT
    if stroops != stroops.to_integral_value():
        raise ValueError(f"{value} has more than 7 decimal places")
    return int(stroops)


def format_amount(stroops: int) -> str:
    """Horizon's 7-decimal amount text, e.g. ``"100.0000000"``."""
    sign = "-" if stroops < 0 else ""
    whole, frac = divmod(abs(stroops), STROOPS_PER_UNIT)
    return f"{sign}{whole}.{frac:07d}"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _toid(ledger: int, tx_order: int, op_index: int) -> int:
    """Horizon's total order id: ledger, transaction and operation packed into an int64."""
    return (ledger << 32) | (tx_order << 12) | op_index


def _asset_type(code: str) -> str:
    return "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12"


def _asset_label(code: str | None, issuer: str | None) -> str:
    return "native" if code is None else f"{code}:{issuer}"
