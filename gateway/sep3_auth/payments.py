"""Payments that arrive for SEP-3 authorizations: the hash memo of the payment is the
SHA-256 of the attachment the sending institution had authorized. A payment that matches an
authorized request in asset and amount goes to the payout queue for our customer; anything
else is recorded for an operator with the reason."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stellar_sdk import MuxedAccount

from gateway.outbound.horizon import Payment
from gateway.payouts import LIVE, PayoutInstruction
from gateway.types import to_stroops

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWork
    from gateway.sep12_customer import CustomerService

SOURCE = "sep3"
OFF_CHAIN_RAIL = "bank_account"  # a customer without a Stellar account is paid off-chain
# (rail, the customer's payout details) -> (destination, memo type, memo, rail, problem).
DestinationOf = Callable[
    [str | None, Mapping[str, str]],
    tuple[str | None, str | None, str | None, str | None, str | None],
]


@dataclass(frozen=True)
class Matched:
    outcome: str
    note: str | None
    compliance_id: str | None


def _paid_to(p: Payment, destination: str) -> bool:
    """Whether the payment went to the (muxed) address the request authorized."""
    if destination.startswith("M"):
        muxed = MuxedAccount.from_account(destination)
        return p.to == muxed.account_id and p.to_muxed_id == str(muxed.account_muxed_id)
    return p.to == destination and p.to_muxed_id is None


def hash_memo_hex(payment: Payment) -> str | None:
    if payment.memo_type != "hash" or not payment.memo:
        return None
    try:
        raw = base64.b64decode(payment.memo, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


async def match_compliance_payments(
    uow: UnitOfWork,
    customers: CustomerService,
    payments: list[Payment],
    destination_of: DestinationOf,
) -> tuple[dict[str, Matched], list[PayoutInstruction], dict[str, dict[str, tuple[str, int]]]]:
    """Per payment id the outcome, the payouts to queue, and the latest payouts of the
    requests (for the queue's check that none is live already)."""
    memos = {p.id: m for p in payments if (m := hash_memo_hex(p)) is not None}
    requests = await uow.compliance.by_memos(sorted(set(memos.values())))
    if not requests:
        return {}, [], {}
    ids = [r["id"] for r in requests.values()]
    latest = await uow.payouts.latest(SOURCE, ids)
    details = await customers.payout_details(
        uow, {r["customer_id"] for r in requests.values() if r["customer_id"]}
    )
    taken = {rid for rid, purposes in latest.items() if purposes.get("payout", ("", 0))[0] in LIVE}
    out: dict[str, Matched] = {}
    instructions: list[PayoutInstruction] = []
    for p in payments:
        request = requests.get(memos.get(p.id, ""))
        if request is None:
            continue
        out[p.id], queued = _match(request, p, taken, details, destination_of)
        if queued is not None:
            taken.add(request["id"])
            instructions.append(queued)
    return out, instructions, latest


def _match(
    r: Mapping[str, Any],
    p: Payment,
    taken: set[str],
    details: Mapping[str, Mapping[str, str]],
    destination_of: DestinationOf,
) -> tuple[Matched, PayoutInstruction | None]:
    rid = r["id"]
    if not _paid_to(p, r["destination"]):
        return Matched("wrong_account", "paid to another address than authorized", rid), None
    if (p.asset_code, p.asset_issuer) != (r["asset_code"], r["asset_issuer"]):
        return Matched("wrong_asset", f"the request authorized {r['asset_code']}", rid), None
    if r["tx_status"] != "ok" or r["customer_id"] is None:
        status = r["tx_status"] if r["tx_status"] != "ok" else "for no customer"
        return Matched("unauthorized", f"the compliance request is {status}", rid), None
    if rid in taken:
        return Matched("duplicate", "the authorized payment had arrived already", rid), None
    paid = to_stroops(p.amount)
    if paid != r["amount"]:
        outcome = "short" if paid < r["amount"] else "over"
        return Matched(outcome, "held for an operator: not the amount authorized", rid), None
    receiver = details.get(r["customer_id"] or "", {})
    destination, memo_type, memo, rail, problem = destination_of(OFF_CHAIN_RAIL, receiver)
    if problem is not None:
        return Matched("held", f"held for an operator: {problem}", rid), None
    return Matched("matched", None, rid), PayoutInstruction(
        source=SOURCE,
        source_id=rid,
        purpose="payout",
        asset_code=r["asset_code"],
        asset_issuer=r["asset_issuer"],
        amount_stroops=paid,
        destination=destination,
        memo_type=memo_type,
        memo=memo,
        rail=rail,
        customer_id=r["customer_id"],
    )
