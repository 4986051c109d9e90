"""The fake Horizon lives in gateway.sandbox.horizon (the sandbox server uses it too); this
module adds the small helpers tests share."""

from stellar_sdk import Keypair

from gateway.sandbox.horizon import (
    FakeHorizonTransport,
    FakeLedger,
    FaultInjector,
    create_fake_horizon_app,
)

__all__ = [
    "FakeHorizonTransport",
    "FakeLedger",
    "FaultInjector",
    "create_fake_horizon_app",
    "funded",
]


def funded(ledger: FakeLedger, xlm: str = "100") -> Keypair:
    """A fresh account on the fake ledger holding ``xlm`` lumens."""
    keypair = Keypair.random()
    ledger.create_account(keypair.public_key, xlm)
    return keypair
