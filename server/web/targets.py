"""``/metrics/targets``: Prometheus HTTP service discovery of the node agents' metrics endpoints.

Each node whose agent is connected and told the server where it serves its metrics (``Register.
metrics_address``, `shoal agent --metrics-listen`) is one target group::

    [{"targets": ["127.0.0.1:40123"], "labels": {"pool": "p1", "node": "node-1", "account": "default"}}]

(the format of https://prometheus.io/docs/prometheus/latest/http_sd/). Like ``/metrics``, it needs the
administrator's key as ``Authorization: Bearer KEY`` on a secure server: Prometheus's ``http_sd_configs``
sends it with its ``authorization`` setting.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from shoal.server.api.tenancy import owner
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.errors import Refused

#: The route (open to the dashboard's session check: it checks the administrator's key itself).
PATH = "/metrics/targets"
#: Checks an account and key (`WebConfig.authenticate`); None: a plaintext server, which asks for nothing.
Authenticate = Callable[[str, str], object] | None


def target_groups(cp: ControlPlane) -> list[dict[str, object]]:
    """One group per connected node with a metrics address, in pool then node order."""
    groups: list[dict[str, object]] = []
    for pool in sorted(cp.pools.values(), key=lambda p: p.key):
        for node in sorted(pool.nodes.values(), key=lambda n: n.key):
            address = node.proto.metrics_address
            if address and node.connected:
                labels = {"pool": pool.proto.id, "node": node.proto.id, "account": owner(pool.proto)}
                groups.append({"targets": [address], "labels": labels})
    return groups


def bearer_key(request: web.Request) -> str:
    """The key of an ``Authorization: Bearer KEY`` header ("" when there is none)."""
    header = request.headers.get("Authorization", "")
    return header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""


def require_admin(request: web.Request, authenticate: Authenticate) -> None:
    """Refuse (401) a request without the administrator's key, on a secure server."""
    if authenticate is None:
        return
    key = bearer_key(request)
    try:
        admitted = bool(key) and authenticate("_admin", key) is not None
    except Refused:
        admitted = False
    if not admitted:
        raise web.HTTPUnauthorized(
            text="the metrics need the administrator's key: 'Authorization: Bearer KEY'\n",
            headers={"WWW-Authenticate": 'Bearer realm="shoal"'},
        )


def targets_extension(cp: ControlPlane, authenticate: Authenticate) -> Callable[[web.Application], None]:
    """What adds ``/metrics/targets`` to the HTTP port's application (`WebConfig.extend`)."""

    async def targets(request: web.Request) -> web.Response:
        require_admin(request, authenticate)
        return web.json_response(target_groups(cp))

    def extend(app: web.Application) -> None:
        app.router.add_get(PATH, targets)

    return extend
