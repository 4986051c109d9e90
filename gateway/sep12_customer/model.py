"""SEP-12 domain: customer types, how a customer's status for a type follows from its fields
and the reviewer's decision, and the GET /customer document. Pure: no I/O.

Status for (customer, type), in order:
  validation "off"                               -> ACCEPTED (nothing is collected)
  a REJECTED decision for the type               -> REJECTED (final, with its message)
  a required field missing, a field rejected or
  awaiting its verification code                 -> NEEDS_INFO
  an ACCEPTED decision on the current data       -> ACCEPTED
  otherwise                                      -> PROCESSING (a review is due)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from gateway.sep9 import CATALOG
from gateway.settings import CustomerTypeSettings


class Status(StrEnum):
    ACCEPTED = "ACCEPTED"
    PROCESSING = "PROCESSING"
    NEEDS_INFO = "NEEDS_INFO"
    REJECTED = "REJECTED"


class FieldStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    PROCESSING = "PROCESSING"
    REJECTED = "REJECTED"
    VERIFICATION_REQUIRED = "VERIFICATION_REQUIRED"


FINAL = frozenset({Status.ACCEPTED, Status.REJECTED})


@dataclass(frozen=True, slots=True)
class Provided:
    status: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    status: str  # ACCEPTED | REJECTED
    version: int  # the customer data version it judged
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    status: Status
    missing: tuple[str, ...]  # fields the customer still has to send (or send again)
    message: str | None
    review_due: bool


def evaluate(
    spec: CustomerTypeSettings,
    provided: Mapping[str, Provided],
    decision: Decision | None,
    version: int,
    validation: str,
) -> Evaluation:
    if validation == "off":
        return Evaluation(Status.ACCEPTED, (), None, False)
    if decision is not None and decision.status == Status.REJECTED:
        return Evaluation(Status.REJECTED, (), decision.message or "Rejected", False)
    wanted = (*spec.required, *spec.optional)
    blocking = [
        name
        for name in wanted
        if (name in spec.required and name not in provided)
        or (
            name in provided
            and provided[name].status in (FieldStatus.REJECTED, FieldStatus.VERIFICATION_REQUIRED)
        )
    ]
    if blocking:
        return Evaluation(Status.NEEDS_INFO, tuple(blocking), None, False)
    if decision is not None and decision.status == Status.ACCEPTED and decision.version == version:
        return Evaluation(Status.ACCEPTED, (), None, False)
    return Evaluation(Status.PROCESSING, (), None, True)


def select_type(
    types: Iterable[CustomerTypeSettings], direction: str, asset: str, amount: Decimal
) -> CustomerTypeSettings | None:
    """The type a customer needs for sending or receiving ``amount`` of ``asset``: the base
    type of the direction, or the one with the highest min_amount the amount reaches."""
    best: CustomerTypeSettings | None = None
    best_threshold = Decimal(-1)
    for t in types:
        if t.direction != direction:
            continue
        if not t.min_amount:
            threshold = Decimal(0)
        elif asset in t.min_amount and amount >= t.min_amount[asset]:
            threshold = t.min_amount[asset]
        else:
            continue
        if threshold > best_threshold:
            best, best_threshold = t, threshold
    return best


def _field_doc(name: str, optional: bool) -> dict[str, Any]:
    spec = CATALOG[name]
    doc: dict[str, Any] = {"type": spec.kind, "description": spec.description}
    if spec.choices:
        doc["choices"] = list(spec.choices)
    if optional:
        doc["optional"] = True
    return doc


def document(
    customer_id: str | None,
    spec: CustomerTypeSettings,
    evaluation: Evaluation,
    provided: Mapping[str, Provided],
) -> dict[str, Any]:
    """The GET /customer body (and the callback body) for one type."""
    body: dict[str, Any] = {}
    if customer_id is not None:
        body["id"] = customer_id
    body["status"] = str(evaluation.status)
    if evaluation.status != Status.ACCEPTED:
        fields = {
            name: _field_doc(name, name not in spec.required)
            for name in (*spec.required, *spec.optional)
            if name in evaluation.missing or name not in provided
        }
        if fields or evaluation.status == Status.NEEDS_INFO:
            body["fields"] = fields
    shown = {
        name: p for name, p in provided.items() if name in spec.required or name in spec.optional
    }
    if shown:
        provided_doc: dict[str, Any] = {}
        for name, p in shown.items():
            doc = _field_doc(name, name not in spec.required)
            doc["status"] = p.status
            if p.error:
                doc["error"] = p.error
            provided_doc[name] = doc
        body["provided_fields"] = provided_doc
    if evaluation.message:
        body["message"] = evaluation.message
    return body
