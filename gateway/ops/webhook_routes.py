"""The operator API's webhooks (owners): register an endpoint (its secret shown once), list
and disable endpoints, list deliveries and redeliver a dead-lettered one. Each action is
audited, never with the secret."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.db.outbox_repository import DEAD, PENDING, SENT
from gateway.errors import InvalidField
from gateway.http_input import read_fields
from gateway.ops.http import OpsJSON, choice, only_params, page, router
from gateway.ops.operators import Operator, OperatorService, Permission
from gateway.ops.webhooks import WebhookService

__all__ = ["routes"]


def routes(webhooks: WebhookService, operators: OperatorService) -> list[Route]:
    route = router(operators)
    owner = Permission.ADMINISTER

    async def register(request: Request, op: Operator) -> Response:
        data = await read_fields(request)
        unknown = sorted(set(data) - {"url", "events"})
        if unknown:
            raise InvalidField(unknown[0], "is not a field of a webhook endpoint")
        shown, secret = await webhooks.register(data.get("url"), data.get("events"), actor=op.actor)
        return OpsJSON({**shown, "secret": secret}, status_code=201)

    async def listing(request: Request, _op: Operator) -> Response:
        only_params(request, ())
        limit, offset = page(request)
        return OpsJSON({"webhooks": await webhooks.listing(limit, offset)})

    async def disable(request: Request, op: Operator) -> Response:
        return OpsJSON(await webhooks.disable(request.path_params["id"], actor=op.actor))

    async def deliveries(request: Request, _op: Operator) -> Response:
        only_params(request, ("status", "endpoint_id"))
        limit, offset = page(request)
        endpoint_id = request.query_params.get("endpoint_id")
        if endpoint_id is not None and not 1 <= len(endpoint_id) <= 64:
            raise InvalidField("endpoint_id", "must be an endpoint id")
        rows = await webhooks.deliveries(
            status=choice(request.query_params, "status", (PENDING, SENT, DEAD)),
            endpoint_id=endpoint_id,
            limit=limit,
            offset=offset,
        )
        return OpsJSON({"deliveries": rows})

    async def redeliver(request: Request, op: Operator) -> Response:
        return OpsJSON(await webhooks.redeliver(request.path_params["id"], actor=op.actor))

    return [
        route("/webhooks", listing, owner),
        route("/webhooks", register, owner, ("POST",)),
        route("/webhooks/deliveries", deliveries, owner),
        route("/webhooks/deliveries/{id}/redeliver", redeliver, owner, ("POST",)),
        route("/webhooks/{id}/disable", disable, owner, ("POST",)),
    ]
