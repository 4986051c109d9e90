"""SEP-3 compliance AUTH_SERVER."""

from gateway.sep3_auth.payments import Matched, match_compliance_payments
from gateway.sep3_auth.sanctions import LocalListScreen, SanctionsScreen, Screening
from gateway.sep3_auth.service import Answer, ComplianceService

__all__ = [
    "Answer",
    "ComplianceService",
    "LocalListScreen",
    "Matched",
    "SanctionsScreen",
    "Screening",
    "match_compliance_payments",
]
