"""SEP-12 KYC API: customers, their sealed SEP-9 data, per-type status and callbacks."""

from gateway.sep12_customer.model import Status, select_type
from gateway.sep12_customer.service import (
    CALLBACK_KIND,
    REVIEW_KIND,
    CustomerService,
    TransactionDirectory,
    provider_review_handler,
)

__all__ = [
    "CALLBACK_KIND",
    "REVIEW_KIND",
    "CustomerService",
    "Status",
    "TransactionDirectory",
    "provider_review_handler",
    "select_type",
]
