"""Bulk disbursements and the payout engine: CSV reading, the state machines, uploads,
approvals, federation destinations and the start's balance reservation. Channel accounts and
the submitter are not here yet."""

from gateway.disbursement.csv_rows import Reading, Row, read_rows
from gateway.disbursement.model import Disbursement, DisbursementPayment

__all__ = ["Disbursement", "DisbursementPayment", "Reading", "Row", "read_rows"]
