"""Bulk disbursements and the payout engine: CSV reading, the state machines, uploads,
approvals (starts, direct payouts, retries), federation destinations, the balance
reservation, channel accounts and the submitter."""

from gateway.disbursement.csv_rows import Reading, Row, read_rows
from gateway.disbursement.model import Disbursement, DisbursementPayment

__all__ = ["Disbursement", "DisbursementPayment", "Reading", "Row", "read_rows"]
