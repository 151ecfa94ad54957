"""The card side of the wire: the status words the cards answer and each card kind's applet
(``proto/apdu-profile.md``), shared by the agent's sessions (``nhigw.agent.cards``) and the
virtual cards (``nhigw.vcard.cards``)."""

from __future__ import annotations

from enum import IntEnum

from nhigw.contracts.models import CardKind


class SW(IntEnum):
    """ISO 7816-4 status words (SW1 SW2 as one number)."""

    OK = 0x9000
    WRONG_PIN = 0x63C0  # 63 Cx: the PIN was wrong, x tries are left (the low nibble; ``WRONG_PIN_MASK``)
    WRONG_LENGTH = 0x6700
    SECURITY = 0x6982  # security status not satisfied: the PIN is not verified
    BLOCKED = 0x6983  # the PIN is blocked: no tries left
    NOT_FOUND = 0x6A82  # no such applet or file (SELECT of another kind's applet)
    WRONG_P1P2 = 0x6A86
    NO_DATA = 0x6A88  # referenced data not found (an HC without a PIN)
    OFFSET = 0x6B00  # READ BINARY past the end of the file
    INS = 0x6D00
    CLA = 0x6E00

    @property
    def raw(self) -> bytes:
        return self.to_bytes(2, "big")


WRONG_PIN_MASK = 0xFFF0  # ``sw & WRONG_PIN_MASK == SW.WRONG_PIN`` for every 63 Cx


# Each kind's applet, as SELECT names it.
AID: dict[CardKind, bytes] = {
    CardKind.HC: bytes.fromhex("D1580000010000000000000000001100"),
    CardKind.SAM: bytes.fromhex("D1580000010000000000000000003100"),
    CardKind.HPC: bytes.fromhex("D1580000010000000000000000002100"),
}
