"""Fault drill: a card removed in the middle of a signature.

1. In-process readers (``VirtualReaderBank``) behind the whole stack: the SAM vanishes
   between GET CHALLENGE and INTERNAL AUTHENTICATE of a one-call registration. The HIS
   gets a clean 1102 through the gateway (no 5xx, no hang, nothing sent upstream), the
   agent's state drops the card at once (and the gateway's view follows from the
   agent's presence), and once the card is back and the SAM verified again the same
   call works. (The HC is read when it is put in and the signature uses that data, so
   an HC pulled during a signature is noticed by the card monitor, not by the
   signature's APDUs: there is no HC I/O in a signature to interrupt.)
2. Real pcscd + vpcd: the virtual SAM drops its vpcd connection on receiving INTERNAL
   AUTHENTICATE, i.e. in the middle of an APDU, before any answer. pcscd reports the
   card gone, the agent answers 1102 at once, and when the card is back (in another
   reader: vpcd does not revive a slot whose APDU was cut off) the agent works again.
"""

from __future__ import annotations

import asyncio

import pytest

from nhigw.vcard.bank import VirtualReaderBank
from nhigw.vcard.cards import SamCard
from tests.helpers import eventually
from tests.pcsc import Pcscd
from tests.stack import running_stack

INS_GET_CHALLENGE, INS_INTERNAL_AUTH = 0x84, 0x88


class VanishingSam(SamCard):
    """Leaves its reader right after answering GET CHALLENGE, when armed."""

    bank: VirtualReaderBank
    reader: str
    armed = False

    def transmit(self, raw: bytes) -> bytes:
        out = super().transmit(raw)
        if self.armed and raw[1] == INS_GET_CHALLENGE:
            self.armed = False
            self.bank.remove(self.reader)
        return out


def reader_of(bank: VirtualReaderBank, cls: type) -> str:
    return next(r for r, c in bank.cards.items() if isinstance(c, cls))


async def test_card_removed_mid_signature_gives_1102_through_the_gateway_and_recovers() -> None:
    async with running_stack() as s:
        sam_reader = reader_of(s.bank, SamCard)
        orig_sam = s.bank.cards[sam_reader]
        assert isinstance(orig_sam, SamCard)
        sam = VanishingSam(orig_sam.ident, s.factory.keys.key(orig_sam.ident.samId))
        sam.bank, sam.reader = s.bank, sam_reader
        s.bank.insert(sam_reader, sam)
        await s.ready()
        status, body = await s.gw("/api/v1/BasicData/Register", workstation=s.workstation)
        assert status == 200, body
        calls_before = sum(s.store.calls.values())

        # The SAM leaves between GET CHALLENGE and INTERNAL AUTHENTICATE.
        sam.armed = True
        status, body = await asyncio.wait_for(s.gw("/api/v1/BasicData/Register", workstation=s.workstation), 15)
        assert status < 500 and body["statusCode"] == 1102, body
        assert body["message"] and body["messageEn"]
        assert int(s.agent.sam_state) == 0
        _, st = await s.agent_call("GET", "/api/common/v1/Status")
        assert st["status"]["sam"]["status"] == 0

        async def gateway_sees(sam_state: int) -> bool:
            _, b = await s.call("GET", s.gateway_url + "/api/workstations")
            return any(w["workstation"] == s.workstation and w["states"]["sam"] == sam_state for w in b["workstations"])

        assert await eventually(lambda: gateway_sees(0))
        assert sum(s.store.calls.values()) == calls_before  # nothing went upstream

        # Back in the reader (a new card object: the in-process presence token is the object):
        # present but not verified (1); verified again, the same call works.
        s.bank.insert(sam_reader, SamCard(orig_sam.ident, s.factory.keys.key(orig_sam.ident.samId)))

        async def sam_present() -> bool:
            return int(s.agent.sam_state) == 1

        assert await eventually(sam_present)
        assert (await s.agent_call("POST", "/api/sam/v1/Verification", json={}))[1]["statusCode"] == 0
        status, body = await s.gw("/api/v1/BasicData/Register", workstation=s.workstation)
        assert status == 200, body


@pytest.mark.pcsc
async def test_sam_gone_mid_apdu_over_pcscd_gives_1102_and_recovers(pcscd: Pcscd) -> None:

    from nhigw.agent.cardio import PcscBackend
    from nhigw.agent.core import Agent
    from nhigw.agent.dc import DcClient
    from nhigw.contracts.codes import StatusError
    from nhigw.contracts.models import SignatureKind
    from nhigw.sim.app import create_app as sim_app
    from nhigw.sim.store import SimStore
    from nhigw.vcard.bank import CardFactory
    from nhigw.vcard.identities import Identities, KeyStore
    from nhigw.vcard.vpcd import VpcdLink
    from tests.helpers import site_url, start_site

    class CardPulled(Exception):
        pass

    class DroppingSam(SamCard):
        """Drops the vpcd connection on receiving INTERNAL AUTHENTICATE, before answering."""

        armed = False

        def transmit(self, raw: bytes) -> bytes:
            if self.armed and len(raw) > 1 and raw[1] == INS_INTERNAL_AUTH:
                self.armed = False
                # Not a ConnectionError: VpcdLink's task ends (closing the socket) instead of reconnecting.
                raise CardPulled("card pulled mid-APDU")
            return super().transmit(raw)

    factory = CardFactory(Identities.load(), KeyStore(None))
    proto = factory.make(factory.default_specs()[0])
    assert isinstance(proto, SamCard)
    sam = DroppingSam(proto.ident, factory.keys.key(proto.ident.samId))
    hc = factory.make(factory.default_specs()[1])
    store = SimStore.seeded()
    store.register_sam(sam.ident.samId, sam.ident.hospitalId, factory.keys.public_pem(sam.ident.samId))
    runner = await start_site(sim_app(store))
    # Slot 3 (no other test uses it): after an APDU cut off mid-way, vpcd does not see a card in
    # that slot again until pcscd restarts (seen with vsmartcard-vpcd 0.9); the card goes back in slot 2.
    links = [VpcdLink(sam, port=pcscd.ports[3]), VpcdLink(hc, port=pcscd.ports[1])]
    for link in links:
        await link.insert()
    agent = Agent(backend=PcscBackend(), dc=DcClient(site_url(runner)), workstation="drill")
    try:
        async def both_present() -> bool:
            p = await agent.backend.presence()
            return bool(p.get("Virtual PCD B 00 01") and p.get("Virtual PCD 00 01"))

        assert await eventually(both_present)
        await agent.initial(None)
        agent.start_monitor(0.05)
        await agent.sam_verify()
        await agent.sign(SignatureKind.HC, "01")
        sam.armed = True
        with pytest.raises(StatusError) as err:
            await asyncio.wait_for(agent.sign(SignatureKind.HC, "01"), 15)
        assert int(err.value.code) == 1102
        assert int(agent.sam_state) == 0
        assert int(agent.hc_state) == 2 or int(agent.hc_state) == 1  # the HC is untouched

        # The card is put back (a new vpcd connection once pcscd has seen it gone): present (1);
        # verify, sign again.
        await asyncio.wait_for(links[0].remove(), 5)

        async def sam_absent() -> bool:
            return not (await agent.backend.presence()).get("Virtual PCD B 00 01")

        assert await eventually(sam_absent, 10)
        links[0] = VpcdLink(sam, port=pcscd.ports[2])
        await links[0].insert()

        async def sam_present() -> bool:
            return int(agent.sam_state) == 1

        assert await eventually(sam_present, 10)
        await agent.sam_verify()
        sig = await agent.sign(SignatureKind.HC, "01")
        assert sig.hcIdNo == "Z299999929"
    finally:
        await agent.stop()
        for link in links:
            await link.remove()
        await runner.cleanup()
