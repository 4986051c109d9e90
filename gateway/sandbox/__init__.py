"""Local stand-ins for outside systems: the fake Horizon used by tests, benchmarks and the sandbox.

Names are loaded lazily so ``python -m gateway.sandbox.horizon`` does not import its module twice.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("gateway.sandbox.horizon"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
