"""SEP-3 compliance AUTH_SERVER."""

from gateway.sep3_auth.sanctions import LocalListScreen, SanctionsScreen, Screening
from gateway.sep3_auth.service import Answer, ComplianceService

__all__ = ["Answer", "ComplianceService", "LocalListScreen", "SanctionsScreen", "Screening"]
