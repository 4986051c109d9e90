"""The command line: run the fake Horizon as a standalone server (``main``)."""

from __future__ import annotations

import argparse
from decimal import Decimal

from gateway.sandbox.horizon.app import create_fake_horizon_app
from gateway.sandbox.horizon.faults import FaultInjector
from gateway.sandbox.horizon.ledger import TESTNET_PASSPHRASE, FakeLedger


def main(argv: list[str] | None = None) -> None:
    """Run the fake Horizon as a server: ``python -m gateway.sandbox.horizon --port 8100``."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.sandbox.horizon",
        description="A fake Stellar Horizon with an admin API under /_fake/.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--passphrase", default=TESTNET_PASSPHRASE)
    parser.add_argument("--base-fee", type=int, default=100, help="stroops per operation")
    parser.add_argument("--base-reserve", default="0.5", help="XLM")
    parser.add_argument(
        "--fault-timeout", type=float, default=30.0, help="seconds a timeout fault holds on"
    )
    parser.add_argument(
        "--close-delay", type=float, default=0.0, help="seconds each submission waits"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    ledger = FakeLedger(
        args.passphrase, base_reserve=Decimal(args.base_reserve), base_fee=args.base_fee
    )
    app = create_fake_horizon_app(
        ledger,
        FaultInjector(args.seed),
        fault_timeout=args.fault_timeout,
        close_delay=args.close_delay,
    )
    # One worker only: the ledger lives in this process's memory.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
