"""Bulk disbursements and the payout engine (in progress: the CSV reading and the state
machines are here; storage, approval flow and submission come next)."""

from gateway.disbursement.csv_rows import Reading, Row, read_rows
from gateway.disbursement.model import Disbursement, DisbursementPayment

__all__ = ["Disbursement", "DisbursementPayment", "Reading", "Row", "read_rows"]
