"""Local stand-ins for outside systems: the fake Horizon used by tests, benchmarks and the sandbox.

Its public names are re-exported here from ``gateway.sandbox.horizon``.
"""

from gateway.sandbox.horizon import (
    AppliedTransaction,
    FakeHorizonTransport,
    FakeLedger,
    FaultInjector,
    FaultRule,
    LedgerAccount,
    PaymentRecord,
    Trustline,
    create_fake_horizon_app,
)

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
]
