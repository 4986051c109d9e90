"""The operator API (``/ops``): operators and the audit log (owners), disbursements and
payouts (upload, direct payouts, approve, start, pause, cancel, retry), the distribution
account. Each route reuses a service; each action is audited with before and after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.disbursement.model import OPERATOR_ACTIONS, DisbursementStatus
from gateway.disbursement.service import SOURCE as DISBURSEMENT_SOURCE
from gateway.errors import InvalidField
from gateway.http_input import Upload, read_fields
from gateway.ops.http import (
    PREFIX,
    OpsJSON,
    choice,
    int_param,
    only_params,
    page,
    router,
    text_field,
)
from gateway.ops.operators import Operator, OperatorService, Permission
from gateway.payouts import CANCELED, FAILED, READY, SUBMITTED, SUCCEEDED
from gateway.sep3_auth.settled import SOURCES as SEP3_SOURCES
from gateway.sep31.service import PAYMENT_SOURCE as TRANSFER_PAYMENT_SOURCE
from gateway.sep31.service import SOURCE as TRANSFER_SOURCE

PAYOUT_SOURCES = (DISBURSEMENT_SOURCE, TRANSFER_SOURCE, TRANSFER_PAYMENT_SOURCE, *SEP3_SOURCES)

if TYPE_CHECKING:
    from gateway.app import Services

__all__ = ["PREFIX", "routes"]

MAX_SHOWN = 500  # payments shown with a disbursement
_PAID_TO = ("destination", "memo_type", "memo", "customer_id")
PAYOUT_STATUSES = (READY, SUBMITTED, SUCCEEDED, FAILED, CANCELED)
# Who may do which disbursement action: initiators prepare and ask, approvers decide.
ACTION_PERMISSION = {
    "ready": Permission.INITIATE,
    "retry": Permission.INITIATE,
    "approve": Permission.APPROVE,
    "start": Permission.APPROVE,
    "pause": Permission.APPROVE,
    "cancel": Permission.APPROVE,
    "drop_retry": Permission.APPROVE,
}
assert set(ACTION_PERMISSION) == OPERATOR_ACTIONS


def _disbursement(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "original"}


def routes(services: Services, operators: OperatorService) -> list[Route]:
    disbursements = services.disbursements

    route = router(operators)

    # -- who am I; operators; audit ------------------------------------------------------

    async def me(_request: Request, op: Operator) -> Response:
        return OpsJSON({"id": op.id, "name": op.name, "role": op.role, "actor": op.actor})

    async def list_operators(request: Request, _op: Operator) -> Response:
        only_params(request, ())
        limit, offset = page(request)
        return OpsJSON({"operators": await operators.listing(limit, offset)})

    async def create_operator(request: Request, op: Operator) -> Response:
        data = await read_fields(request)
        days = data.get("expires_in_days")
        if days is not None and (not isinstance(days, int) or not 1 <= days <= 3650):
            raise InvalidField("expires_in_days", "must be a whole number from 1 to 3650")
        row, key = await operators.create(
            text_field(data, "name") or "",
            text_field(data, "role") or "",
            created_by=op.actor,
            expires_in=timedelta(days=days) if days else None,
        )
        return OpsJSON({**row, "key": key}, status_code=201)

    async def revoke_operator(request: Request, op: Operator) -> Response:
        return OpsJSON(await operators.revoke(request.path_params["id"], by=op.actor))

    async def audit(request: Request, _op: Operator) -> Response:
        only_params(request, ("actor", "action", "subject_type", "subject_id", "before_id"))
        q = request.query_params
        limit = int_param(q, "limit", 50, 1, 500)
        # audit_log.id is a 32-bit integer on PostgreSQL: a larger value cannot be bound.
        before = int_param(q, "before_id", 0, 1, 2**31 - 1) if "before_id" in q else None
        for name in ("actor", "action", "subject_type", "subject_id"):
            if len(q.get(name, "")) > 128:
                raise InvalidField(name, "must be at most 128 characters")
        entries = await operators.audit_log(
            actor=q.get("actor"),
            action=q.get("action"),
            subject_type=q.get("subject_type"),
            subject_id=q.get("subject_id"),
            before_id=before,
            limit=limit,
        )
        next_before = entries[-1]["id"] if len(entries) == limit else None
        return OpsJSON({"entries": entries, "next_before_id": next_before})

    # -- disbursements and payouts -------------------------------------------------------

    async def list_disbursements(request: Request, _op: Operator) -> Response:
        only_params(request, ("status", "kind"))
        limit, offset = page(request)
        status = choice(request.query_params, "status", [s.value for s in DisbursementStatus])
        kind = choice(request.query_params, "kind", ["bulk", "direct"])
        rows = await disbursements.recent(limit, offset, status=status, kind=kind)
        return OpsJSON({"disbursements": rows})

    async def upload(request: Request, op: Operator) -> Response:
        data = await read_fields(request, allow_files=True)
        file = data.get("file")
        if not isinstance(file, Upload):
            raise InvalidField("file", "send the CSV as a multipart file part named file")
        made = await disbursements.upload(
            file.content, name=text_field(data, "name") or "", uploaded_by=op.actor
        )
        return OpsJSON(made, status_code=201)

    async def show_disbursement(request: Request, _op: Operator) -> Response:
        only_params(request, ())
        limit, _ = page(request, default=MAX_SHOWN)
        return OpsJSON(_disbursement(await disbursements.show(request.path_params["id"], limit)))

    def act(action: str) -> Callable[[Request, Operator], Any]:
        async def endpoint(request: Request, op: Operator) -> Response:
            data = await read_fields(request)
            reason = text_field(data, "reason", required=False)
            did = request.path_params["id"]
            # Audited by the service, in the transaction of the change.
            return OpsJSON(_disbursement(await disbursements.act(did, action, op.actor, reason)))

        endpoint.__name__ = f"disbursement_{action}"
        return endpoint

    async def direct_payout(request: Request, op: Operator) -> Response:
        data = await read_fields(request)
        amount = data.get("amount")
        made = await disbursements.direct(
            asset_code=text_field(data, "asset_code") or "",
            amount=str(amount) if amount is not None else "",
            destination=text_field(data, "destination") or "",
            memo=text_field(data, "memo", required=False) or "",
            external_payment_id=text_field(data, "external_payment_id") or "",
            reference=text_field(data, "receiver_reference", required=False) or "direct payout",
            requested_by=op.actor,
        )
        return OpsJSON(_disbursement(made), status_code=201)

    async def list_payouts(request: Request, op: Operator) -> Response:
        only_params(request, ("status", "source"))
        limit, offset = page(request)
        status = choice(request.query_params, "status", PAYOUT_STATUSES)
        source = choice(request.query_params, "source", PAYOUT_SOURCES)
        rows = await disbursements.payouts(limit, offset, status=status, source=source)
        if not op.can(Permission.READ_PERSONAL):
            # Where a transfer or compliance payout goes comes from its receiver's KYC data.
            rows = [
                r if r["source"] == DISBURSEMENT_SOURCE else {**r, **dict.fromkeys(_PAID_TO)}
                for r in rows
            ]
        return OpsJSON({"payouts": rows})

    async def accounts(request: Request, _op: Operator) -> Response:
        only_params(request, ())
        return OpsJSON(await disbursements.check_balances())

    return [
        route("/me", me, Permission.READ),
        route("/operators", list_operators, Permission.ADMINISTER),
        route("/operators", create_operator, Permission.ADMINISTER, ("POST",)),
        route("/operators/{id}/revoke", revoke_operator, Permission.ADMINISTER, ("POST",)),
        route("/audit", audit, Permission.ADMINISTER),
        route("/disbursements", list_disbursements, Permission.READ),
        route("/disbursements", upload, Permission.INITIATE, ("POST",)),
        route("/disbursements/{id}", show_disbursement, Permission.READ),
        *(
            route(f"/disbursements/{{id}}/{action}", act(action), permission, ("POST",))
            for action, permission in sorted(ACTION_PERMISSION.items())
        ),
        route("/payouts", list_payouts, Permission.READ),
        route("/payouts", direct_payout, Permission.INITIATE, ("POST",)),
        route("/accounts", accounts, Permission.READ),
    ]
