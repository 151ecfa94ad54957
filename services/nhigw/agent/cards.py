"""Card sessions (HC, SAM, HPC) over the ``CardConnection`` seam; no pyscard here.

The pure parts (``parse_hc_basic``, ``parse_hpc_basic``, ``sw_tries_left``) are split
from the I/O so they are tested with byte vectors. Command set: ``proto/apdu-profile.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nhigw.agent.cardio import CardConnection
from nhigw.contracts.apdu import AID, SW, WRONG_PIN_MASK
from nhigw.contracts.models import CardKind

APDU_SELECT = bytes.fromhex("00A4040010")
APDU_HC_BASIC = bytes.fromhex("00CA11000200 00".replace(" ", ""))
APDU_GET_CHALLENGE = bytes.fromhex("0084000008")


class ApduError(Exception):
    """The card answered with an unexpected status word."""

    def __init__(self, sw: int, what: str = "") -> None:
        self.sw = sw
        super().__init__(f"{what}: SW {sw:04X}")


class PinError(ApduError):
    """Wrong PIN; ``tries_left`` (0 means blocked)."""

    def __init__(self, sw: int, tries_left: int) -> None:
        super().__init__(sw, "PIN")
        self.tries_left = tries_left


def sw_tries_left(sw: int) -> int | None:
    """63 Cx -> x; 69 83 -> 0; anything else -> None."""
    if sw & WRONG_PIN_MASK == SW.WRONG_PIN:
        return sw & 0x0F
    if sw == SW.BLOCKED:
        return 0
    return None


@dataclass(frozen=True)
class HcBasic:
    cardSn: str  # the HC card number (6.0 API: cardId, signature: hcId; see contracts.models)
    name: str
    idNo: str
    birthday: str
    sex: str
    dateIssue: str


def parse_hc_basic(data: bytes) -> HcBasic:
    """The public 57-byte basic profile: no[0:12] name[12:32] id[32:42] birth[42:49] sex[49] issue[50:57]."""
    if len(data) < 57:
        raise ValueError(f"basic profile is {len(data)} bytes, expected 57")
    return HcBasic(
        cardSn=data[0:12].decode("ascii"),
        name=data[12:32].split(b"\x00", 1)[0].decode("big5hkscs").strip(),
        idNo=data[32:42].decode("ascii"),
        birthday=data[42:49].decode("ascii"),
        sex=data[49:50].decode("ascii"),
        dateIssue=data[50:57].decode("ascii"),
    )


@dataclass(frozen=True)
class HpcBasic:
    cardId: str
    idNo: str
    cName: str
    eName: str


def parse_hpc_basic(data: bytes) -> HpcBasic:
    if len(data) < 62:
        raise ValueError(f"HPC basic EF is {len(data)} bytes, expected 62")
    return HpcBasic(
        cardId=data[0:12].decode("ascii"),
        idNo=data[12:22].decode("ascii"),
        cName=data[22:42].split(b"\x00", 1)[0].decode("big5hkscs"),
        eName=data[42:62].decode("ascii").rstrip(),
    )


class Session:
    kind: CardKind
    aid: bytes = b""

    def __init__(self, conn: CardConnection) -> None:
        self.conn = conn

    async def select(self) -> bool:
        _data, sw = await self.conn.transmit(APDU_SELECT + self.aid)
        return sw == SW.OK

    async def _ok(self, apdu: bytes, what: str) -> bytes:
        data, sw = await self.conn.transmit(apdu)
        if sw != SW.OK:
            raise ApduError(sw, what)
        return data

    async def challenge(self) -> bytes:
        return await self._ok(APDU_GET_CHALLENGE, "GET CHALLENGE")

    async def internal_authenticate(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        return await self._ok(bytes([0x00, 0x88, 0x00, 0x01, 0x20]) + digest + b"\x00", "INTERNAL AUTHENTICATE")

    async def read_binary_sfi(self, sfi: int, length: int = 0) -> bytes:
        """Read a whole EF by SFI, in pieces of up to 256 bytes."""
        out = await self._ok(bytes([0x00, 0xB0, 0x80 | sfi, 0x00, length & 0xFF]), "READ BINARY")
        if length:
            return out
        while len(out) % 256 == 0 and out:
            data, sw = await self.conn.transmit(bytes([0x00, 0xB0, len(out) >> 8, len(out) & 0xFF, 0x00]))
            if sw == SW.OFFSET:
                break
            if sw != SW.OK:
                raise ApduError(sw, "READ BINARY")
            out += data
            if not data:
                break
        return out

    async def verify_pin(self, pin: str | None) -> None:
        """VERIFY; ``None`` queries. Raises ``PinError`` with tries left, or ``ApduError``."""
        body = b"" if pin is None else pin.encode("ascii")
        apdu = bytes([0x00, 0x20, 0x00, 0x01, len(body)]) + body
        _data, sw = await self.conn.transmit(apdu)
        if sw == SW.OK:
            return
        tries = sw_tries_left(sw)
        if tries is not None:
            raise PinError(sw, tries)
        raise ApduError(sw, "VERIFY")


class HcSession(Session):
    kind = CardKind.HC
    aid = AID[CardKind.HC]

    async def read_basic(self) -> HcBasic:
        return parse_hc_basic(await self._ok(APDU_HC_BASIC, "READ basic"))

    async def change_pin(self, new_pin: str) -> None:
        body = new_pin.encode("ascii")
        await self._ok(bytes([0x00, 0x24, 0x01, 0x01, len(body)]) + body, "CHANGE REFERENCE DATA")

    async def disable_pin(self) -> None:
        await self._ok(bytes.fromhex("0026000100"), "DISABLE VERIFICATION")

    async def read_organ_donate(self) -> str:
        """READ BINARY of the organ donation / hospice mark EF (SFI 3, 1 byte; this project's profile)."""
        return (await self._ok(bytes.fromhex("00B0830001"), "READ organ donation mark")).decode("ascii")

    async def write_organ_donate(self, mark: str) -> None:
        await self._ok(bytes.fromhex("00D6830001") + mark.encode("ascii"), "UPDATE organ donation mark")


class SamSession(Session):
    kind = CardKind.SAM
    aid = AID[CardKind.SAM]

    async def read_ids(self) -> tuple[str, str]:
        data = await self.read_binary_sfi(1, 22)
        return data[:12].decode("ascii"), data[12:22].decode("ascii")


class HpcSession(Session):
    kind = CardKind.HPC
    aid = AID[CardKind.HPC]

    async def read_basic(self) -> HpcBasic:
        return parse_hpc_basic(await self.read_binary_sfi(1, 62))

    async def change_pin(self, new_pin: str) -> None:
        body = new_pin.encode("ascii")
        await self._ok(bytes([0x00, 0x24, 0x01, 0x01, len(body)]) + body, "CHANGE REFERENCE DATA")

    async def unblock(self, puk: str, new_pin: str) -> None:
        body = puk.encode("ascii") + new_pin.encode("ascii")
        _data, sw = await self.conn.transmit(bytes([0x00, 0x2C, 0x00, 0x01, len(body)]) + body)
        if sw == SW.OK:
            return
        tries = sw_tries_left(sw)
        if tries is not None:
            raise PinError(sw, tries)
        raise ApduError(sw, "RESET RETRY COUNTER")


# The session of each kind, in the order a card in a reader is tried (HC first: it changes most).
SESSIONS: dict[CardKind, type[Session]] = {cls.kind: cls for cls in (HcSession, SamSession, HpcSession)}
