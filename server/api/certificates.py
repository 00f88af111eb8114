"""CertificateService: the caller's account's certificates (see `shoal.server.certificates`)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from shoal.server.api.auth import caller
from shoal.server.api.errors import invalid, rpc_errors
from shoal.server.api.paging import page
from shoal.server.api.tenancy import owner
from shoal.server.api.validation import check_enum
from shoal.server.certificates import model
from shoal.server.certificates.registry import CertificateRegistry
from shoal.server.controlplane import ControlPlane
from shoal.server.domain.ids import DEFAULT_ACCOUNT
from shoal.v1 import certificate_pb2 as C
from shoal.v1 import certificate_pb2_grpc

Ctx = grpc.aio.ServicerContext


def usages(cp: ControlPlane) -> Iterator[model.Usage]:
    """Every pool's references and every live node's installed certificates (a deletion checks them)."""
    for pool in cp.pools.values():
        if pool.proto.certificate_references:
            yield model.Usage(
                "pool",
                pool.proto.id,
                owner(pool.proto),
                frozenset(r.thumbprint for r in pool.proto.certificate_references),
            )
    for node in cp.nodes.values():
        if node.proto.certificate_references:
            its_pool = cp.pools.get(node.pool_key)
            account = owner(its_pool.proto) if its_pool is not None else DEFAULT_ACCOUNT
            yield model.Usage(
                "node",
                node.proto.name,
                account,
                frozenset(r.thumbprint for r in node.proto.certificate_references),
            )


class CertificateServicer(certificate_pb2_grpc.CertificateServiceServicer):
    """Serves CertificateService from the certificate registry; each caller sees its account's only."""

    def __init__(self, registry: CertificateRegistry, cp: ControlPlane) -> None:
        self.registry = registry
        self.cp = cp

    @rpc_errors
    async def AddCertificate(self, request: C.AddCertificateRequest, context: Ctx) -> C.Certificate:
        v = check_enum(request.format, C.CertificateFormat, "format")
        if v:
            raise invalid("INVALID_CERTIFICATE_FORMAT", v)
        parsed = model.parse(request.data, request.format, request.password)
        model.check_claimed_thumbprint(parsed, request.thumbprint, request.thumbprint_algorithm)
        return self.registry.message(await self.registry.add(caller().account, parsed))

    @rpc_errors
    async def GetCertificate(self, request: C.GetCertificateRequest, context: Ctx) -> C.Certificate:
        thumbprint = model.thumbprint_from_name(request.name)
        return self.registry.message(self.registry.get(caller().account, thumbprint))

    @rpc_errors
    async def ListCertificates(self, request: C.ListCertificatesRequest, context: Ctx) -> C.ListCertificatesResponse:
        if request.state:
            v = check_enum(request.state, C.CertificateState, "state")
            if v:
                raise invalid("INVALID_STATE", v)
        recs = [r for r in self.registry.of_account(caller().account) if not request.state or r.state == request.state]
        items, token = page(recs, request.page_size, request.page_token, f"certificates?state={request.state}")
        return C.ListCertificatesResponse(certificates=[self.registry.message(r) for r in items], next_page_token=token)

    @rpc_errors
    async def DeleteCertificate(self, request: C.DeleteCertificateRequest, context: Ctx) -> C.Certificate:
        thumbprint = model.thumbprint_from_name(request.name)
        rec = await self.registry.delete(caller().account, thumbprint, lambda: usages(self.cp))
        return self.registry.message(rec)

    @rpc_errors
    async def CancelCertificateDeletion(
        self, request: C.CancelCertificateDeletionRequest, context: Ctx
    ) -> C.Certificate:
        thumbprint = model.thumbprint_from_name(request.name)
        return self.registry.message(await self.registry.cancel_deletion(caller().account, thumbprint))
