"""Other organizations' web hosts serving stellar.toml, through respx (no sockets)."""

from __future__ import annotations

import httpx
import respx
import tomli_w
from stellar_sdk import Keypair


class TomlHosts:
    def __init__(self) -> None:
        self.router = respx.Router(assert_all_called=False)

    def serve(
        self,
        domain: str,
        toml: dict[str, object] | str,
        *,
        status: int = 200,
        scheme: str = "https",
    ) -> respx.Route:
        body = toml if isinstance(toml, str) else tomli_w.dumps(toml)
        return self.router.get(f"{scheme}://{domain}/.well-known/stellar.toml").respond(
            status, text=body
        )

    def serve_signing_key(self, domain: str, keypair: Keypair | None = None) -> Keypair:
        kp = keypair or Keypair.random()
        self.serve(domain, {"SIGNING_KEY": kp.public_key})
        return kp

    def client(self) -> httpx.AsyncClient:
        async def handler(request: httpx.Request) -> httpx.Response:
            try:
                return await self.router.async_handler(request)
            except respx.models.AllMockedAssertionError:
                # A host nobody serves: what the network says about an unknown name.
                raise httpx.ConnectError("name or service not known", request=request) from None

        return httpx.AsyncClient(transport=httpx.MockTransport(handler))
