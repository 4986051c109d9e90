"""Horizon's problem documents (RFC 7807 error bodies) for the fake's error answers."""

from __future__ import annotations

from http import HTTPStatus

from gateway.sandbox.horizon.entries import JSON

PROBLEM_URL = "https://stellar.org/horizon-errors/"


def _problem(kind: str, title: str, status: int, detail: str, extras: JSON | None = None) -> JSON:
    body: JSON = {"type": PROBLEM_URL + kind, "title": title, "status": status, "detail": detail}
    if extras is not None:
        body["extras"] = extras
    return body


def not_found_problem() -> JSON:
    """Horizon's 404 for an unknown resource."""
    return _problem(
        "not_found",
        "Resource Missing",
        404,
        "The requested resource was not found: the URL is not valid, or nothing in the "
        "database matches the parameters given.",
    )


def bad_request_problem(field_name: str, reason: str) -> JSON:
    """Horizon's 400 for a query or path parameter it cannot accept."""
    return _problem(
        "bad_request",
        "Bad Request",
        400,
        "The request you sent was invalid in some way.",
        {"invalid_field": field_name, "reason": reason},
    )


def malformed_problem(envelope_xdr: str) -> JSON:
    """Horizon's 400 for an envelope it cannot decode."""
    return _problem(
        "transaction_malformed",
        "Transaction Malformed",
        400,
        "Horizon could not decode the transaction envelope in this request: it should be a "
        "base64-encoded XDR TransactionEnvelope. The envelope received is echoed in "
        "`extras.envelope_xdr`.",
        {"envelope_xdr": envelope_xdr},
    )


def submission_timeout_problem(tx_hash: str | None, envelope_xdr: str | None) -> JSON:
    """Horizon's 504 when a submission was not seen in a ledger in time (outcome unknown)."""
    extras: JSON = {}
    if tx_hash is not None:
        extras["hash"] = tx_hash
    if envelope_xdr is not None:
        extras["envelope_xdr"] = envelope_xdr
    return _problem(
        "transaction_submission_timeout",
        "Transaction Submission Timeout",
        504,
        "The submission timed out. That does not mean it failed: poll GET /transactions with "
        "the hash in `extras.hash` for a while before submitting again.",
        extras,
    )


def status_problem(status: int) -> JSON:
    """The problem document Horizon answers with for a bare HTTP status."""
    if status == 429:
        return _problem(
            "rate_limit_exceeded",
            "Rate Limit Exceeded",
            429,
            "The rate limit for this client is used up; the X-RateLimit-* response headers "
            "say the allowance and when it resets.",
        )
    if status == 503:
        return _problem(
            "service_unavailable",
            "Service Unavailable",
            503,
            "The request cannot be serviced right now. Please try again later.",
        )
    if status == 504:
        return _problem(
            "timeout",
            "Timeout",
            504,
            "The request timed out before completing. Try again; when submitting a transaction, "
            "send exactly the same one (same sequence number).",
        )
    if status == 500:
        return _problem(
            "server_error",
            "Internal Server Error",
            500,
            "An error occurred while processing this request.",
        )
    if status == 404:
        return not_found_problem()
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    kind = "bad_request" if 400 <= status < 500 else "server_error"
    return _problem(kind, title, status, "Injected by the fake Horizon's fault rules.")
