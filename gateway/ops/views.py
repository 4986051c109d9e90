"""The operator API's views and actions on customers (KYC status, review decisions, and their
SEP-9 data for those allowed, each read audited), SEP-31 transfers with their history, SEP-3
compliance requests and who may receive recipients' data, and incoming payments that matched
no transfer. Each action is audited with before and after."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import BadRequest, InvalidField
from gateway.http_input import read_fields
from gateway.ops.http import OpsJSON, choice, only_params, page, router, text_field
from gateway.ops.operators import Operator, OperatorService, Permission
from gateway.sep3_auth.service import DENIED, ERROR, OK, PENDING
from gateway.sep12_customer import Status
from gateway.sep31 import TransferStatus
from gateway.sep31.service import OPERATOR_ACTIONS, render_for_operators

if TYPE_CHECKING:
    from gateway.app import Services

__all__ = ["routes"]

CUSTOMER_STATUSES = tuple(s.value for s in Status)
TRANSFER_STATUSES = tuple(s.value for s in TransferStatus)
COMPLIANCE_STATUSES = (OK, DENIED, PENDING, ERROR)
# Every outcome of an incoming payment but "matched" (gateway.sep31 and gateway.sep3_auth).
UNMATCHED_OUTCOMES = (
    "short",
    "over",
    "duplicate",
    "unknown_memo",
    "wrong_asset",
    "late",
    "unauthorized",
    "wrong_account",
    "held",
)
FIELDS_TAKEN = frozenset({"need_customer_info", "need_transaction_info"})
MAX_REASON = 512  # what histories keep
MAX_FIELDS = 50
MAX_FILTER = 253  # a domain name's length


def _reason(data: Mapping[str, Any], *, required: bool) -> str | None:
    reason = text_field(data, "reason", required=required)
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidField("reason", f"must be at most {MAX_REASON} characters")
    return reason


def _named(value: object, name: str) -> dict[str, Any]:
    """An object of 1 to MAX_FIELDS entries keyed by field names."""
    if not isinstance(value, dict) or not 1 <= len(value) <= MAX_FIELDS:
        raise InvalidField(name, f"must be an object naming 1 to {MAX_FIELDS} fields")
    for key in value:
        if not key or len(key) > 64:
            raise InvalidField(name, "field names are 1 to 64 characters")
    return value


def _why_per_field(value: object, name: str) -> dict[str, str]:
    """{field: what is wrong with it}: each reason 1 to 256 characters."""
    named = _named(value, name)
    for why in named.values():
        if not isinstance(why, str) or not 1 <= len(why) <= 256:
            raise InvalidField(name, "each reason is a string of 1 to 256 characters")
    return named


def _transaction_fields(value: object) -> dict[str, Any]:
    """need_transaction_info: {name: description} or {name: {description, optional}}."""
    out: dict[str, Any] = {}
    for key, spec in _named(value, "fields").items():
        if isinstance(spec, str):
            spec = {"description": spec}
        if (
            not isinstance(spec, dict)
            or set(spec) - {"description", "optional"}
            or not isinstance(spec.get("description"), str)
            or not 1 <= len(spec["description"]) <= 256
            or not isinstance(spec.get("optional", False), bool)
        ):
            raise InvalidField(
                "fields", "each is a description (1 to 256 characters) or {description, optional}"
            )
        out[key] = spec
    return out


def _action_fields(action: str, value: object) -> dict[str, Any] | None:
    if action not in FIELDS_TAKEN:
        if value is not None:
            raise InvalidField("fields", f"{action} takes no fields")
        return None
    if action == "need_customer_info":
        return dict(_why_per_field(value, "fields"))
    return _transaction_fields(value)


def _filter(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not 1 <= len(value) <= MAX_FILTER:
        raise InvalidField(name, f"must be 1 to {MAX_FILTER} characters")
    return value


def _review(view: Mapping[str, Any]) -> dict[str, Any]:
    """What a decision changes of a customer: statuses per type, fields' statuses."""
    return {
        "types": view["types"],
        "fields": {name: f["status"] for name, f in view["fields"].items()},
    }


def _transfer_state(view: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("events", "payouts")}


def routes(services: Services, operators: OperatorService) -> list[Route]:
    customers = services.customers
    transfers = services.transfers
    compliance = services.compliance

    route = router(operators)

    # -- customers -----------------------------------------------------------------------

    async def list_customers(request: Request, _op: Operator) -> Response:
        only_params(request, ("status", "type"))
        limit, offset = page(request)
        q = request.query_params
        found = await customers.listing(
            limit,
            offset,
            status=choice(q, "status", CUSTOMER_STATUSES),
            type_name=choice(q, "type", customers.type_names),
        )
        return OpsJSON({"customers": found})

    async def show_customer(request: Request, _op: Operator) -> Response:
        only_params(request, ())
        return OpsJSON(await customers.review_state(request.path_params["id"]))

    async def personal_data(request: Request, op: Operator) -> Response:
        only_params(request, ())
        customer_id = request.path_params["id"]
        state = await customers.review_state(customer_id)  # 404 for no such customer
        values = await customers.personal_data(customer_id)
        files = {name: f["file_id"] for name, f in state["fields"].items() if f["file_id"]}
        # On record before anything is shown; the record names the fields, never a value.
        await operators.audit(
            op.actor,
            "customer.read_personal",
            "customer",
            customer_id,
            None,
            {"fields": sorted(values), "files": sorted(files)},
        )
        return OpsJSON({"id": customer_id, "fields": values, "files": files})

    async def decide_customer(request: Request, op: Operator) -> Response:
        data = await read_fields(request)
        customer_id = request.path_params["id"]
        type_name = text_field(data, "type") or ""
        status = text_field(data, "status") or ""
        reason = _reason(data, required=False)
        rejected = data.get("rejected_fields")
        if rejected is not None:
            rejected = _why_per_field(rejected, "rejected_fields")
        before = await customers.review_state(customer_id)
        await customers.decide(customer_id, type_name, status, reason, op.actor, rejected)
        after = await customers.review_state(customer_id)
        await operators.audit(
            op.actor, "customer.decision", "customer", customer_id, _review(before), _review(after)
        )
        return OpsJSON(after)

    # -- SEP-31 transfers ----------------------------------------------------------------

    async def list_transfers(request: Request, _op: Operator) -> Response:
        only_params(request, ("status",))
        limit, offset = page(request)
        status = choice(request.query_params, "status", TRANSFER_STATUSES)
        return OpsJSON({"transfers": await transfers.listing(limit, offset, status=status)})

    async def show_transfer(request: Request, _op: Operator) -> Response:
        only_params(request, ())
        return OpsJSON(await transfers.history(request.path_params["id"]))

    async def sent_info(request: Request, op: Operator) -> Response:
        only_params(request, ())
        transfer_id = request.path_params["id"]
        await transfers.history(transfer_id)  # 404 for no such transfer
        values = await transfers.sent_info(transfer_id) or {}
        await operators.audit(
            op.actor,
            "transfer.read_personal",
            "transfer",
            transfer_id,
            None,
            {"fields": sorted(values)},
        )
        return OpsJSON({"id": transfer_id, "fields": values})

    def act_on_transfer(action: str) -> Callable[[Request, Operator], Any]:
        async def endpoint(request: Request, op: Operator) -> Response:
            data = await read_fields(request)
            transfer_id = request.path_params["id"]
            reason = _reason(data, required=True) or ""
            fields = _action_fields(action, data.get("fields"))
            before = _transfer_state(await transfers.history(transfer_id))
            after = render_for_operators(
                await transfers.operate(transfer_id, action, op.actor, reason, fields)
            )
            await operators.audit(
                op.actor, f"transfer.{action}", "transfer", transfer_id, before, after
            )
            return OpsJSON(after)

        endpoint.__name__ = f"transfer_{action}"
        return endpoint

    # -- SEP-3 compliance ----------------------------------------------------------------

    async def list_compliance(request: Request, _op: Operator) -> Response:
        only_params(request, ("status", "tx_status", "info_status", "decided"))
        limit, offset = page(request)
        q = request.query_params
        decided = choice(q, "decided", ("true", "false"))
        found = await compliance.requests(
            limit,
            offset,
            status=choice(q, "status", COMPLIANCE_STATUSES),
            tx_status=choice(q, "tx_status", COMPLIANCE_STATUSES),
            info_status=choice(q, "info_status", COMPLIANCE_STATUSES),
            decided=None if decided is None else decided == "true",
        )
        return OpsJSON({"requests": found})

    async def show_compliance(request: Request, _op: Operator) -> Response:
        only_params(request, ())
        return OpsJSON(await compliance.request(request.path_params["id"]))

    async def decide_compliance(request: Request, op: Operator) -> Response:
        data = await read_fields(request)
        request_id = request.path_params["id"]
        tx = text_field(data, "tx", required=False)
        info = text_field(data, "info", required=False)
        if tx is None and info is None:
            raise BadRequest("send tx, info or both: ok or denied")
        reason = _reason(data, required=False)
        # Audited by the service, in the transaction of the decision.
        await compliance.decide(request_id, tx=tx, info=info, operator=op.actor, reason=reason)
        return OpsJSON(await compliance.request(request_id))

    async def allow_list(request: Request, _op: Operator) -> Response:
        only_params(request, ("customer_id", "domain"))
        limit, offset = page(request)
        q = request.query_params
        domain = _filter(q, "domain")
        consents = await compliance.consents(
            limit,
            offset,
            customer_id=_filter(q, "customer_id"),
            domain=domain.lower() if domain else None,
        )
        return OpsJSON({"institutions": compliance.institutions(), "consents": consents})

    async def allow(request: Request, op: Operator) -> Response:
        data = await read_fields(request)
        customer_id = text_field(data, "customer_id") or ""
        domain = text_field(data, "domain") or ""
        recorded = await compliance.allow(customer_id, domain, op.actor)
        await operators.audit(
            op.actor, "compliance.allow", "customer", customer_id, None, {"domain": recorded}
        )
        return OpsJSON({"customer_id": customer_id, "domain": recorded, "allowed": True})

    async def disallow(request: Request, op: Operator) -> Response:
        only_params(request, ())
        customer_id = request.path_params["customer_id"]
        domain = request.path_params["domain"].lower()
        await compliance.disallow(customer_id, domain)
        await operators.audit(
            op.actor, "compliance.disallow", "customer", customer_id, {"domain": domain}, None
        )
        return OpsJSON({"customer_id": customer_id, "domain": domain, "allowed": False})

    # -- incoming payments ---------------------------------------------------------------

    async def unmatched_payments(request: Request, _op: Operator) -> Response:
        only_params(request, ("outcome",))
        limit, offset = page(request)
        outcome = choice(request.query_params, "outcome", UNMATCHED_OUTCOMES) or "unmatched"
        found = await transfers.incoming_payments(limit, offset, outcome=outcome)
        return OpsJSON({"payments": found})

    async def refund_payment(request: Request, op: Operator) -> Response:
        data = await read_fields(request)
        payment_id = request.path_params["id"]
        reason = _reason(data, required=True) or ""
        before = await transfers.incoming_payment(payment_id)
        after = await transfers.refund_payment(payment_id, op.actor, reason)
        await operators.audit(
            op.actor,
            "payment.refund",
            "payment",
            payment_id,
            {"resolution": before["resolution"]},
            {"resolution": after["resolution"]},
        )
        return OpsJSON(after)

    return [
        route("/customers", list_customers, Permission.READ),
        route("/customers/{id}", show_customer, Permission.READ),
        route("/customers/{id}/personal-data", personal_data, Permission.READ_PERSONAL),
        route("/customers/{id}/decision", decide_customer, Permission.APPROVE, ("POST",)),
        route("/transfers", list_transfers, Permission.READ),
        route("/transfers/{id}", show_transfer, Permission.READ),
        route("/transfers/{id}/sent-info", sent_info, Permission.READ_PERSONAL),
        *(
            route(
                f"/transfers/{{id}}/{action}",
                act_on_transfer(action),
                Permission.APPROVE,
                ("POST",),
            )
            for action in sorted(OPERATOR_ACTIONS)
        ),
        route("/compliance", list_compliance, Permission.READ),
        # Before /compliance/{id}, which would take "allow-list" for an id.
        route("/compliance/allow-list", allow_list, Permission.READ),
        route("/compliance/allow-list", allow, Permission.APPROVE, ("POST",)),
        route(
            "/compliance/allow-list/{customer_id}/{domain}",
            disallow,
            Permission.APPROVE,
            ("DELETE",),
        ),
        route("/compliance/{id}", show_compliance, Permission.READ),
        route("/compliance/{id}/decision", decide_compliance, Permission.APPROVE, ("POST",)),
        route("/payments/unmatched", unmatched_payments, Permission.READ),
        route("/payments/{id}/refund", refund_payment, Permission.APPROVE, ("POST",)),
    ]
