"""``nhigw vcard``: virtual cards in vpcd slots of a real pcscd, with a small control API.

Control API (HTTP, loopback): ``GET /slots``; ``PUT /slots/{n}`` ``{"card": "hc:000073898381"}``
inserts a card into slot n (vpcd port 35963 + n); ``DELETE /slots/{n}`` removes it.
With ``--sim URL`` each SAM's public key is provisioned in the simulator's test-card API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from nhigw.common.http import error_middleware, healthz, json_response, parse_body
from nhigw.common.logging import get_logger
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import Model, SamRegistration
from nhigw.vcard.bank import CardFactory, UnknownCard
from nhigw.vcard.cards import SamCard
from nhigw.vcard.vpcd import VPCD_BASE_PORT, VpcdLink

log = get_logger("nhigw.vcard")


class InsertRequest(Model):
    card: str


@dataclass
class VcardService:
    factory: CardFactory
    vpcd_host: str = "127.0.0.1"
    base_port: int = VPCD_BASE_PORT
    sim_url: str | None = None
    links: dict[int, VpcdLink] = field(default_factory=dict)
    specs: dict[int, str] = field(default_factory=dict)

    async def register_sam(self, card: SamCard) -> None:
        if not self.sim_url:
            return
        body = SamRegistration(samId=card.ident.samId, hospitalId=card.ident.hospitalId, publicKeyPem=self.factory.keys.public_pem(card.ident.samId))
        async with aiohttp.ClientSession() as s:
            for attempt in range(50):
                try:
                    async with s.post(f"{self.sim_url}/test/v1/Sam/Register", json=body.model_dump()) as r:
                        r.raise_for_status()
                        return
                except aiohttp.ClientError:
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.2)

    async def insert(self, slot: int, spec: str) -> None:
        card = self.factory.make(spec)
        if isinstance(card, SamCard):
            await self.register_sam(card)
        await self.remove(slot)
        link = VpcdLink(card, self.vpcd_host, self.base_port + slot)
        self.links[slot] = link
        self.specs[slot] = spec
        await link.insert()

    async def remove(self, slot: int) -> None:
        link = self.links.pop(slot, None)
        self.specs.pop(slot, None)
        if link:
            await link.remove()

    async def close(self) -> None:
        for slot in list(self.links):
            await self.remove(slot)


SERVICE = web.AppKey("vcard", VcardService)


async def slots(req: web.Request) -> web.Response:
    service = req.app[SERVICE]
    return json_response({"slots": {str(k): v for k, v in service.specs.items()}, "known": service.factory.known()})


async def put_slot(req: web.Request) -> web.Response:
    body = await parse_body(req, InsertRequest, empty_ok=False)
    try:
        await req.app[SERVICE].insert(int(req.match_info["n"]), body.card)
    except UnknownCard as exc:
        raise StatusError(Code.PARAM_VALUE, str(exc)) from exc
    except TimeoutError as exc:
        raise StatusError(Code.NO_READER, "vpcd slot not reachable (is pcscd with vpcd running?)") from exc
    return json_response({"statusCode": 0})


async def delete_slot(req: web.Request) -> web.Response:
    await req.app[SERVICE].remove(int(req.match_info["n"]))
    return json_response({"statusCode": 0})


async def inserted_cards(app: web.Application) -> AsyncIterator[None]:
    """The cards in the vpcd slots are taken out when the app stops."""
    yield
    await app[SERVICE].close()


ROUTES: list[web.RouteDef] = [
    web.get("/healthz", healthz),
    web.get("/slots", slots),
    web.put(r"/slots/{n:\d+}", put_slot),
    web.delete(r"/slots/{n:\d+}", delete_slot),
]


def create_app(service: VcardService) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE] = service
    app.router.add_routes(ROUTES)
    app.cleanup_ctx.append(inserted_cards)
    return app
