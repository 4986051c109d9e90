"""FakeHorizonTransport: an httpx transport that serves the fake Horizon in-process and turns
simulated timeouts into httpx.ReadTimeout."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from gateway.sandbox.horizon.app import create_fake_horizon_app
from gateway.sandbox.horizon.faults import FAULT_HEADER, TRANSPORT_HEADER, FaultInjector
from gateway.sandbox.horizon.ledger import FakeLedger


class FakeHorizonTransport(httpx.AsyncBaseTransport):
    """An httpx transport serving the fake Horizon in-process.

    Give it a FakeLedger (an app is built around it) or an app from create_fake_horizon_app.
    ``timeout`` faults raise httpx.ReadTimeout at once instead of waiting; ``lost_answer``
    faults apply the request first, then raise it (or answer their status).
    """

    def __init__(self, target: FakeLedger | Starlette, faults: FaultInjector | None = None):
        if isinstance(target, FakeLedger):
            app = create_fake_horizon_app(target, faults)
        else:
            if faults is not None:
                raise ValueError("an app brings its own FaultInjector")
            app = target
        self.app = app
        self.ledger: FakeLedger = app.state.ledger
        self.faults: FaultInjector = app.state.faults
        self._asgi = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers[TRANSPORT_HEADER] = "in-process"
        response = await self._asgi.handle_async_request(request)
        if response.headers.get(FAULT_HEADER) == "timeout":
            await response.aclose()
            raise httpx.ReadTimeout("fake Horizon: simulated timeout", request=request)
        return response

    async def aclose(self) -> None:
        await self._asgi.aclose()
