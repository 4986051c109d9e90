"""SEP-2 federation server."""

from gateway.federation.service import FederationRecord, FederationService

__all__ = ["FederationRecord", "FederationService"]
