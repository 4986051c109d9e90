"""The fake Horizon lives in gateway.sandbox.horizon (the sandbox server uses it too)."""

from gateway.sandbox.horizon import (
    FakeHorizonTransport,
    FakeLedger,
    FaultInjector,
    create_fake_horizon_app,
)

__all__ = ["FakeHorizonTransport", "FakeLedger", "FaultInjector", "create_fake_horizon_app"]
