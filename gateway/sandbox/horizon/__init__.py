"""A fake Stellar Horizon for tests, benchmarks and the local sandbox.

An in-memory ledger checks and applies real signed envelopes in stellar-core's order, a small
Starlette app serves it with Horizon's JSON, and runtime fault rules make it misbehave on demand.
"""

from gateway.sandbox.horizon.app import create_fake_horizon_app
from gateway.sandbox.horizon.cli import main
from gateway.sandbox.horizon.entries import (
    AppliedTransaction,
    LedgerAccount,
    PaymentRecord,
    Trustline,
)
from gateway.sandbox.horizon.faults import FaultInjector, FaultRule
from gateway.sandbox.horizon.ledger import FakeLedger
from gateway.sandbox.horizon.transport import FakeHorizonTransport

__all__ = [
    "AppliedTransaction",
    "FakeHorizonTransport",
    "FakeLedger",
    "FaultInjector",
    "FaultRule",
    "LedgerAccount",
    "PaymentRecord",
    "Trustline",
    "create_fake_horizon_app",
    "main",
]
