"""What the routes themselves cannot say about each operation: a summary, query parameters,
the request body and the success responses, keyed by ``"METHOD /path"`` as mounted. Paths,
methods, path parameters and security come from the mounted routes (document.py); every
response may also be an error (``{"error": ...}``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.db.outbox_repository import DEAD, PENDING, SENT
from gateway.disbursement.model import OPERATOR_ACTIONS as DISBURSEMENT_ACTIONS
from gateway.disbursement.model import DisbursementStatus
from gateway.ops.metrics import CONTENT_TYPE as PROMETHEUS
from gateway.ops.operators import Role
from gateway.ops.routes import PAYOUT_SOURCES, PAYOUT_STATUSES
from gateway.ops.views import (
    COMPLIANCE_STATUSES,
    CUSTOMER_STATUSES,
    TRANSFER_STATUSES,
    UNMATCHED_OUTCOMES,
)
from gateway.sep9 import CATALOG
from gateway.sep31.service import OPERATOR_ACTIONS as TRANSFER_ACTIONS

Schema = dict[str, Any]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"

STRING: Schema = {"type": "string"}
FILE: Schema = {"type": "string", "format": "binary"}
OBJECT: Schema = {"type": "object"}
LIST: Schema = {"type": "array", "items": OBJECT}


def obj(*required: str, **properties: Schema) -> Schema:
    """A JSON object with these properties (others allowed), ``required`` among them."""
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    return out


def one_of(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def whole(low: int, high: int) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": high}


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema = field(default_factory=lambda: dict(STRING))
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Body:
    """The request body: a schema per media type the route reads."""

    content: Mapping[str, Schema]
    required: bool = True


@dataclass(frozen=True)
class Reply:
    description: str
    media_type: str | None = JSON  # None: no body
    schema: Schema | None = None


@dataclass(frozen=True)
class Operation:
    summary: str
    description: str = ""
    query: tuple[Param, ...] = ()
    headers: tuple[Param, ...] = ()
    body: Body | None = None
    replies: Mapping[int, Reply] = field(default_factory=dict)


def ok(schema: Schema | None = None) -> dict[int, Reply]:
    return {200: Reply("OK", JSON, schema or OBJECT)}


def created(schema: Schema | None = None) -> dict[int, Reply]:
    return {201: Reply("Created", JSON, schema or OBJECT)}


def json_body(schema: Schema, *, required: bool = True, form: bool = False) -> Body:
    """A body read by ``read_fields``: JSON, or (``form``: every field a string) the same
    fields as a urlencoded form."""
    return Body({JSON: schema, FORM: schema} if form else {JSON: schema}, required=required)


PAGE = (
    Param("limit", whole(1, 500), "Rows to return (default 50)"),
    Param("offset", whole(0, 10_000_000), "Rows to skip"),
)


def listing(key: str) -> dict[int, Reply]:
    return ok(obj(key, **{key: LIST}))


# -- public ------------------------------------------------------------------------------

_SEP3_ANSWER = obj(
    "tx_status",
    "info_status",
    tx_status=one_of(*COMPLIANCE_STATUSES),
    info_status=one_of(*COMPLIANCE_STATUSES),
    pending={"type": "integer"},
    error=STRING,
)
_SEP3_REFUSAL = {"anyOf": [_SEP3_ANSWER, obj("error", error=STRING)]}
_READY = obj("status", "checks", status=one_of("ready", "not ready"), checks=OBJECT)

PUBLIC: dict[str, Operation] = {
    "GET /.well-known/stellar.toml": Operation(
        "This organization's stellar.toml (SEP-1)",
        replies={200: Reply("The TOML document", TEXT, STRING)},
    ),
    "GET /auth": Operation(
        "A SEP-10 challenge transaction for an account",
        query=(
            Param("account", STRING, "The account (G... or M...) to authenticate", True),
            Param("memo", STRING, "An id memo naming a user of a shared account"),
            Param("home_domain", STRING, "Which of this server's home domains"),
            Param("client_domain", STRING, "The wallet's domain, to prove it signs too"),
        ),
        replies=ok(obj("transaction", "network_passphrase", transaction=STRING)),
    ),
    "POST /auth": Operation(
        "A SEP-10 session token for a signed challenge",
        body=json_body(obj("transaction", transaction=STRING), form=True),
        replies=ok(obj("token", token=STRING)),
    ),
    "GET /health": Operation(
        "Whether the process answers, and the payment watcher's lag",
        replies=ok(obj("status", status=one_of("ok"), payment_watcher=OBJECT)),
    ),
    "GET /ready": Operation(
        "Whether this instance can work (database, schema, Horizon, watcher)",
        replies={
            200: Reply("Ready", JSON, _READY),
            503: Reply("Not ready: the checks say why", JSON, _READY),
        },
    ),
    "GET /metrics": Operation(
        "Prometheus metrics",
        replies={200: Reply("Prometheus text exposition", PROMETHEUS, STRING)},
    ),
    "GET /openapi.json": Operation(
        "This document", replies=ok(obj("openapi", "paths", openapi=STRING, paths=OBJECT))
    ),
    "GET /docs": Operation(
        "This document as a page", replies={200: Reply("HTML page", HTML, STRING)}
    ),
    "GET /federation": Operation(
        "Look up a federation record (SEP-2)",
        query=(
            Param("type", one_of("name", "id", "txid", "forward"), "Kind of lookup", True),
            Param("q", STRING, "A stellar address (name) or an account id (id)"),
        ),
        replies=ok(
            obj(
                "account_id",
                stellar_address=STRING,
                account_id=STRING,
                memo_type=STRING,
                memo=STRING,
            )
        ),
    ),
    "POST /compliance/auth": Operation(
        "Ask for compliance approval of a payment (SEP-3 AUTH_SERVER)",
        "The sending institution posts its signed request; 200 when approved, 202 while "
        "pending, 403 when denied, 400 on an error.",
        body=Body({FORM: obj("data", "sig", data=STRING, sig=STRING)}),
        replies={
            200: Reply("Approved", JSON, _SEP3_ANSWER),
            202: Reply("Pending", JSON, _SEP3_ANSWER),
            400: Reply("Error", JSON, _SEP3_REFUSAL),
            403: Reply("Denied", JSON, _SEP3_REFUSAL),
        },
    ),
    "GET /sep31/info": Operation(
        "Assets this anchor receives, fees and the KYC types needed (SEP-31)",
        replies=ok(obj("receive", receive=OBJECT)),
    ),
}

# -- SEP-12 and SEP-31 (SEP-10 session) ---------------------------------------------------

_CUSTOMER_IDS: dict[str, Schema] = {
    "id": STRING,
    "account": STRING,
    "memo": STRING,
    "memo_type": STRING,
    "type": STRING,
    "transaction_id": STRING,
    "lang": STRING,
}
_SEP9_TEXT = {name: STRING for name, spec in CATALOG.items() if spec.kind != "binary"}
_SEP9_FILES = {name: FILE for name, spec in CATALOG.items() if spec.kind == "binary"}
_CUSTOMER = {"type": "object", "properties": {**_CUSTOMER_IDS, **_SEP9_TEXT}}
_CUSTOMER_WITH_FILES = {
    "type": "object",
    "properties": {**_CUSTOMER_IDS, **_SEP9_TEXT, **_SEP9_FILES},
}
_STATUS = obj("status", status=STRING)
_FILE = obj("file_id", file_id=STRING, content_type=STRING, size={"type": "integer"})
_CALLBACK = obj("url", url=STRING)
_CUSTOMER_QUERY = tuple(
    Param(name, STRING, "Which customer, and for which type")
    for name in ("id", "account", "memo", "memo_type", "type", "transaction_id", "lang")
)

SESSION: dict[str, Operation] = {
    "GET /kyc/customer": Operation(
        "The caller's customer: status and the fields still needed (SEP-12)",
        query=_CUSTOMER_QUERY,
        replies=ok(_STATUS),
    ),
    "PUT /kyc/customer": Operation(
        "Create or update a customer with SEP-9 fields (SEP-12)",
        "Personal data is accepted in the body only, never in the URL.",
        body=Body({JSON: _CUSTOMER, MULTIPART: _CUSTOMER_WITH_FILES}),
        replies={202: Reply("Accepted", JSON, obj("id", id=STRING))},
    ),
    "PUT /kyc/customer/verification": Operation(
        "Verify fields with the codes sent to the customer (SEP-12)",
        body=json_body(
            {
                "type": "object",
                "properties": {"id": STRING, "type": STRING},
                "additionalProperties": STRING,
            },
            form=True,
        ),
        replies=ok(_STATUS),
    ),
    "PUT /kyc/customer/callback": Operation(
        "Where to send customer status changes (SEP-12)",
        body=json_body(obj("url", url=STRING, **_CUSTOMER_IDS), form=True),
        replies=ok(),
    ),
    "POST /kyc/customer/files": Operation(
        "Upload a file to refer to later by its file_id (SEP-12)",
        body=Body({MULTIPART: obj("file", file=FILE)}),
        replies=ok(_FILE),
    ),
    "GET /kyc/customer/files": Operation(
        "The caller's files, by file_id or customer_id (SEP-12)",
        query=(Param("file_id"), Param("customer_id")),
        replies=listing("files"),
    ),
    "DELETE /kyc/customer/{account}": Operation(
        "Erase the customer's personal data (SEP-12)",
        body=json_body(obj(memo=STRING, memo_type=STRING), required=False, form=True),
        replies=ok(),
    ),
    "POST /sep31/transactions": Operation(
        "Start a transfer to a receiver (SEP-31)",
        headers=(Param("Idempotency-Key", STRING, "Replays answer the first request's result"),),
        body=json_body(
            obj(
                "amount",
                "asset_code",
                amount={"type": ["string", "number"]},
                asset_code=STRING,
                asset_issuer=STRING,
                sender_id=STRING,
                receiver_id=STRING,
                funding_method=STRING,
                refund_memo=STRING,
                refund_memo_type=STRING,
            )
        ),
        replies=created(
            obj(
                "id",
                "stellar_account_id",
                id=STRING,
                stellar_account_id=STRING,
                stellar_memo_type=STRING,
                stellar_memo=STRING,
            )
        ),
    ),
    "GET /sep31/transactions/{id}": Operation(
        "A transfer the caller started (SEP-31)",
        replies=ok(obj("transaction", transaction=obj("id", "status", id=STRING, status=STRING))),
    ),
    "PATCH /sep31/transactions/{id}": Operation(
        "Update the fields a transfer waits for (SEP-31, deprecated by SEP-12)",
        body=json_body(obj(fields=OBJECT)),
        replies=ok(),
    ),
    "PUT /sep31/transactions/{id}/callback": Operation(
        "Where to send the transfer's status changes (SEP-31)",
        body=json_body(_CALLBACK, form=True),
        replies={204: Reply("Saved", None)},
    ),
}

# -- operator API -------------------------------------------------------------------------

_REASON = obj(reason=STRING)
_REASON_REQUIRED = obj("reason", reason={"type": "string", "minLength": 1, "maxLength": 512})
_DISBURSEMENT_ACTIONS = {
    "ready": "Mark an uploaded disbursement ready for approval",
    "approve": "Approve a disbursement's start or a retry of its failed payments",
    "start": "Start paying an approved disbursement",
    "pause": "Pause a disbursement (payments not yet sent wait)",
    "cancel": "Cancel a disbursement that has not started or is paused",
    "retry": "Ask to retry a disbursement's failed payments (needs approval)",
    "drop_retry": "Withdraw a pending retry of failed payments",
}
_TRANSFER_ACTIONS = {
    "release": "Release a held transfer to its payout",
    "refund": "Refund what the sending anchor paid for a transfer",
    "fail": "Fail a transfer",
    "need_customer_info": "Ask the sending anchor for customer fields (fields: {name: why})",
    "need_transaction_info": "Ask the sending anchor for transaction fields",
    "info_updated": "Record that what a transfer waited for has been updated",
}
_COMPLIANCE_STATUS = one_of(*COMPLIANCE_STATUSES)
_CONSENT = obj(
    "customer_id",
    "domain",
    "allowed",
    customer_id=STRING,
    domain=STRING,
    allowed={"type": "boolean"},
)

OPERATOR: dict[str, Operation] = {
    "GET /ops/me": Operation(
        "Who the key belongs to",
        replies=ok(obj("id", "name", "role", id=STRING, name=STRING, role=STRING)),
    ),
    "GET /ops/operators": Operation("Operators", query=PAGE, replies=listing("operators")),
    "POST /ops/operators": Operation(
        "Make an operator key (shown once)",
        body=json_body(
            obj(
                "name",
                "role",
                name={"type": "string", "minLength": 1, "maxLength": 2048},
                role=one_of(*(r.value for r in Role)),
                expires_in_days=whole(1, 3650),
            )
        ),
        replies=created(obj("id", "key", id=STRING, key=STRING)),
    ),
    "POST /ops/operators/{id}/revoke": Operation("Revoke an operator key", replies=ok()),
    "GET /ops/audit": Operation(
        "The audit log, newest first",
        query=(
            Param("limit", whole(1, 500), "Entries to return (default 50)"),
            Param("before_id", whole(1, 2**31 - 1), "Entries older than this one"),
            *(
                Param(name, {"type": "string", "maxLength": 128})
                for name in ("actor", "action", "subject_type", "subject_id")
            ),
        ),
        replies=ok(obj("entries", entries=LIST, next_before_id={"type": ["integer", "null"]})),
    ),
    "GET /ops/disbursements": Operation(
        "Disbursements, newest first",
        query=(
            *PAGE,
            Param("status", one_of(*(s.value for s in DisbursementStatus))),
            Param("kind", one_of("bulk", "direct")),
        ),
        replies=listing("disbursements"),
    ),
    "POST /ops/disbursements": Operation(
        "Upload a CSV of payments as a new disbursement",
        body=Body({MULTIPART: obj("file", "name", file=FILE, name=STRING)}),
        replies=created(obj("id", id=STRING)),
    ),
    "GET /ops/disbursements/{id}": Operation(
        "A disbursement with its payments", query=PAGE, replies=ok(obj("id", id=STRING))
    ),
    **{
        f"POST /ops/disbursements/{{id}}/{action}": Operation(
            _DISBURSEMENT_ACTIONS.get(action, f"Disbursement action {action}"),
            body=json_body(_REASON, required=False),
            replies=ok(obj("id", id=STRING)),
        )
        for action in sorted(DISBURSEMENT_ACTIONS)
    },
    "GET /ops/payouts": Operation(
        "Payouts of every source, newest first",
        query=(
            *PAGE,
            Param("status", one_of(*PAYOUT_STATUSES)),
            Param("source", one_of(*PAYOUT_SOURCES), "Which part of the gateway asked for it"),
        ),
        replies=listing("payouts"),
    ),
    "POST /ops/payouts": Operation(
        "Make a direct payout (one payment, approved like a disbursement)",
        body=json_body(
            obj(
                "asset_code",
                "amount",
                "destination",
                "external_payment_id",
                asset_code=STRING,
                amount={"type": ["string", "number"]},
                destination=STRING,
                memo=STRING,
                external_payment_id=STRING,
                receiver_reference=STRING,
            )
        ),
        replies=created(obj("id", id=STRING)),
    ),
    "GET /ops/accounts": Operation("The distribution account's balances", replies=ok()),
    "GET /ops/customers": Operation(
        "Customers and their KYC status",
        query=(
            *PAGE,
            Param("status", one_of(*CUSTOMER_STATUSES)),
            Param("type", STRING, "A customer type from the settings"),
        ),
        replies=listing("customers"),
    ),
    "GET /ops/customers/{id}": Operation(
        "A customer's review state (statuses, fields' statuses; no values)", replies=ok()
    ),
    "GET /ops/customers/{id}/personal-data": Operation(
        "A customer's SEP-9 values (the read is audited)",
        replies=ok(obj("id", "fields", id=STRING, fields=OBJECT, files=OBJECT)),
    ),
    "POST /ops/customers/{id}/decision": Operation(
        "Decide a customer's KYC review for a type",
        body=json_body(
            obj(
                "type",
                "status",
                type=STRING,
                status=STRING,
                reason=STRING,
                rejected_fields={"type": "object", "additionalProperties": STRING},
            )
        ),
        replies=ok(),
    ),
    "GET /ops/transfers": Operation(
        "SEP-31 transfers, newest first",
        query=(*PAGE, Param("status", one_of(*TRANSFER_STATUSES))),
        replies=listing("transfers"),
    ),
    "GET /ops/transfers/{id}": Operation(
        "A transfer with its history and payouts", replies=ok(obj("id", id=STRING))
    ),
    "GET /ops/transfers/{id}/sent-info": Operation(
        "What the sending anchor sent about a transfer (the read is audited)",
        replies=ok(obj("id", "fields", id=STRING, fields=OBJECT)),
    ),
    **{
        f"POST /ops/transfers/{{id}}/{action}": Operation(
            _TRANSFER_ACTIONS.get(action, f"Transfer action {action}"),
            body=json_body(obj("reason", reason=_REASON_REQUIRED["properties"]["reason"])),
            replies=ok(obj("id", id=STRING)),
        )
        for action in sorted(TRANSFER_ACTIONS)
    },
    "GET /ops/compliance": Operation(
        "SEP-3 compliance requests received, newest first",
        query=(
            *PAGE,
            Param("status", _COMPLIANCE_STATUS),
            Param("tx_status", _COMPLIANCE_STATUS),
            Param("info_status", _COMPLIANCE_STATUS),
            Param("decided", one_of("true", "false")),
        ),
        replies=listing("requests"),
    ),
    "GET /ops/compliance/allow-list": Operation(
        "Institutions and which customers allowed them their data",
        query=(
            *PAGE,
            Param("customer_id", {"type": "string", "minLength": 1, "maxLength": 253}),
            Param("domain", {"type": "string", "minLength": 1, "maxLength": 253}),
        ),
        replies=ok(obj("institutions", "consents", institutions=LIST, consents=LIST)),
    ),
    "POST /ops/compliance/allow-list": Operation(
        "Record that a customer allows an institution their data",
        body=json_body(obj("customer_id", "domain", customer_id=STRING, domain=STRING)),
        replies=ok(_CONSENT),
    ),
    "DELETE /ops/compliance/allow-list/{customer_id}/{domain}": Operation(
        "Withdraw a customer's consent for an institution",
        replies=ok(_CONSENT),
    ),
    "GET /ops/compliance/{id}": Operation("A compliance request", replies=ok()),
    "POST /ops/compliance/{id}/decision": Operation(
        "Decide a pending compliance request",
        body=json_body(obj(tx=one_of("ok", "denied"), info=one_of("ok", "denied"), reason=STRING)),
        replies=ok(),
    ),
    "GET /ops/payments/unmatched": Operation(
        "Incoming payments that matched no transfer",
        query=(*PAGE, Param("outcome", one_of(*UNMATCHED_OUTCOMES))),
        replies=listing("payments"),
    ),
    "POST /ops/payments/{id}/refund": Operation(
        "Refund an incoming payment that matched no transfer",
        body=json_body(_REASON_REQUIRED),
        replies=ok(),
    ),
    "GET /ops/webhooks": Operation("Webhook endpoints", query=PAGE, replies=listing("webhooks")),
    "POST /ops/webhooks": Operation(
        "Register a webhook endpoint (its signing secret is shown once)",
        body=json_body(obj("url", "events", url=STRING, events={"type": "array", "items": STRING})),
        replies=created(obj("id", "secret", id=STRING, secret=STRING)),
    ),
    "GET /ops/webhooks/deliveries": Operation(
        "Webhook deliveries",
        query=(
            *PAGE,
            Param("status", one_of(PENDING, SENT, DEAD)),
            Param("endpoint_id", {"type": "string", "minLength": 1, "maxLength": 64}),
        ),
        replies=listing("deliveries"),
    ),
    "POST /ops/webhooks/deliveries/{id}/redeliver": Operation(
        "Send a dead-lettered delivery again", replies=ok()
    ),
    "POST /ops/webhooks/{id}/disable": Operation("Disable a webhook endpoint", replies=ok()),
}

OPERATIONS: dict[str, Operation] = {**PUBLIC, **SESSION, **OPERATOR}
