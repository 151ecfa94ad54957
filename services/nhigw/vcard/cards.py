"""Pure card logic: each virtual card turns a command APDU into a response APDU.

No I/O here: ``VirtualCard.transmit(apdu) -> response`` (data + SW1 SW2). The same
objects serve the in-process connection and the vpcd link to a real pcscd.
See ``proto/apdu-profile.md`` for the command set.
"""

from __future__ import annotations

import os
import threading

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from nhigw.contracts.apdu import AID, SW
from nhigw.contracts.models import CardKind
from nhigw.vcard.identities import (
    HcIdentity,
    HpcIdentity,
    SamIdentity,
    check_secret,
    hash_secret,
)

INS_SELECT = 0xA4
INS_GET_DATA = 0xCA
INS_GET_CHALLENGE = 0x84
INS_VERIFY = 0x20
INS_CHANGE = 0x24
INS_DISABLE = 0x26
INS_RESET_RETRY = 0x2C
INS_READ_BINARY = 0xB0
INS_INTERNAL_AUTH = 0x88
INS_UPDATE_BINARY = 0xD6
SFI_ORGAN_DONATE = 3  # HC: the organ donation / hospice mark EF (this profile)

ATR = bytes.fromhex("3B8A800150484946534D4152540A")  # generic T=1 ATR, historical bytes "PHIFSMART"


def sw_tries(n: int) -> bytes:
    return (SW.WRONG_PIN | (n & 0x0F)).to_bytes(2, "big")


def pad_big5(text: str, size: int) -> bytes:
    raw = text.encode("big5")
    if len(raw) > size:
        raise ValueError(f"{text!r} does not fit {size} bytes in Big5")
    return raw + b"\x00" * (size - len(raw))


class Apdu:
    """A parsed short command APDU."""

    __slots__ = ("cla", "ins", "p1", "p2", "data", "le")

    def __init__(self, raw: bytes) -> None:
        if len(raw) < 4:
            raise ValueError("APDU shorter than 4 bytes")
        self.cla, self.ins, self.p1, self.p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        self.data = b""
        self.le: int | None = None
        if len(body) == 1:
            self.le = body[0] or 256
        elif len(body) > 1:
            lc = body[0]
            self.data = body[1 : 1 + lc]
            if len(self.data) != lc:
                raise ValueError("Lc does not match the data")
            rest = body[1 + lc :]
            if rest:
                # HC basic READ sends 00 CA 11 00 02 00 00: Lc=2, data 00 00; a trailing byte is Le.
                self.le = rest[0] or 256


class VirtualCard:
    """Base card: SELECT of its own applet, GET CHALLENGE; subclasses add commands."""

    aid: bytes = b""
    kind: CardKind

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.selected = False
        self.apdu_count = 0

    @property
    def card_id(self) -> str:
        raise NotImplementedError

    def reset(self) -> None:
        with self._lock:
            self.selected = False
            self._on_reset()

    def _on_reset(self) -> None:
        pass

    def transmit(self, raw: bytes) -> bytes:
        with self._lock:
            self.apdu_count += 1
            try:
                apdu = Apdu(raw)
            except ValueError:
                return SW.WRONG_LENGTH.raw
            if apdu.cla != 0x00:
                return SW.CLA.raw
            if apdu.ins == INS_SELECT:
                if apdu.p1 != 0x04:
                    return SW.WRONG_P1P2.raw
                if apdu.data == self.aid:
                    self.selected = True
                    return SW.OK.raw
                self.selected = False
                return SW.NOT_FOUND.raw
            if not self.selected:
                return SW.NOT_FOUND.raw
            if apdu.ins == INS_GET_CHALLENGE:
                return os.urandom(apdu.le or 8) + SW.OK.raw
            return self.handle(apdu)

    def handle(self, apdu: Apdu) -> bytes:
        return SW.INS.raw


class PinMixin:
    """VERIFY / CHANGE REFERENCE DATA bookkeeping shared by HC and HPC."""

    max_tries = 3
    pin_hash: str | None
    tries_left: int
    pin_verified: bool

    def _verify(self, apdu: Apdu) -> bytes:
        if self.pin_hash is None:
            return SW.NO_DATA.raw
        if self.tries_left == 0:
            return SW.BLOCKED.raw
        if not apdu.data:
            return SW.OK.raw if self.pin_verified else sw_tries(self.tries_left)
        pin = apdu.data.decode("ascii", errors="replace")
        if check_secret(self.pin_hash, pin):
            self.tries_left = self.max_tries
            self.pin_verified = True
            return SW.OK.raw
        self.pin_verified = False
        self.tries_left -= 1
        return SW.BLOCKED.raw if self.tries_left == 0 else sw_tries(self.tries_left)

    def _change(self, apdu: Apdu, min_len: int) -> bytes:
        if self.pin_hash is not None and not self.pin_verified:
            return SW.SECURITY.raw
        new = apdu.data.decode("ascii", errors="replace")
        if not (min_len <= len(new) <= 8 and new.isdigit()):
            return SW.WRONG_LENGTH.raw
        self.pin_hash = hash_secret(new, os.urandom(9))
        self.tries_left = self.max_tries
        self.pin_verified = True
        return SW.OK.raw


class HcCard(PinMixin, VirtualCard):
    aid = AID[CardKind.HC]
    kind = CardKind.HC

    def __init__(self, ident: HcIdentity) -> None:
        super().__init__()
        self.ident = ident
        self.pin_hash = ident.pinHash
        self.tries_left = self.max_tries
        self.pin_verified = False
        self.organ_donate = b"0"  # 器官捐贈及安寧緩和註記: one ASCII character, "0" = no mark

    @property
    def card_id(self) -> str:
        return self.ident.cardNo

    def _on_reset(self) -> None:
        self.pin_verified = False

    def basic_profile(self) -> bytes:
        i = self.ident
        out = i.cardNo.encode("ascii") + pad_big5(i.name, 20) + i.idNo.encode("ascii") + i.birthday.encode("ascii") + i.sex.encode("ascii") + i.dateIssue.encode("ascii")
        assert len(out) == 57, len(out)
        return out

    def handle(self, apdu: Apdu) -> bytes:
        if apdu.ins == INS_GET_DATA:
            if apdu.p1 == 0x11 and apdu.p2 == 0x00:
                return self.basic_profile() + SW.OK.raw
            if apdu.p1 == 0x00 and apdu.p2 == 0x00:
                return self.ident.cardNo.encode("ascii") + SW.OK.raw
            return SW.WRONG_P1P2.raw
        if apdu.ins == INS_READ_BINARY and apdu.p1 == 0x80 | SFI_ORGAN_DONATE:
            return self.organ_donate + SW.OK.raw
        if apdu.ins == INS_UPDATE_BINARY and apdu.p1 == 0x80 | SFI_ORGAN_DONATE:
            if len(apdu.data) != 1 or not apdu.data.isalnum():
                return SW.WRONG_LENGTH.raw
            self.organ_donate = apdu.data
            return SW.OK.raw
        if apdu.ins == INS_VERIFY:
            return self._verify(apdu)
        if apdu.ins == INS_CHANGE:
            return self._change(apdu, 4)
        if apdu.ins == INS_DISABLE:
            if self.pin_hash is None:
                return SW.NO_DATA.raw
            if not self.pin_verified:
                return SW.SECURITY.raw
            self.pin_hash = None
            self.pin_verified = False
            return SW.OK.raw
        return SW.INS.raw


class _KeyedCard(VirtualCard):
    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        super().__init__()
        self._key = key
        self._pub_der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def _sign(self, apdu: Apdu) -> bytes:
        if len(apdu.data) != 32:
            return SW.WRONG_LENGTH.raw
        sig = self._key.sign(apdu.data, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return sig + SW.OK.raw

    def _read(self, apdu: Apdu, files: dict[int, bytes], current: list[int]) -> bytes:
        if apdu.p1 & 0x80:  # SFI addressing: select the EF and read from offset 0 (+P2)
            sfi = apdu.p1 & 0x1F
            if sfi not in files:
                return SW.NOT_FOUND.raw
            current[0] = sfi
            offset = apdu.p2
        else:
            if current[0] not in files:
                return SW.NOT_FOUND.raw
            offset = (apdu.p1 << 8) | apdu.p2
        content = files[current[0]]
        if offset > len(content) or (offset == len(content) and content):
            return SW.OFFSET.raw
        le = apdu.le or 256
        return content[offset : offset + le] + SW.OK.raw


class SamCard(_KeyedCard):
    aid = AID[CardKind.SAM]
    kind = CardKind.SAM

    def __init__(self, ident: SamIdentity, key: rsa.RSAPrivateKey) -> None:
        super().__init__(key)
        self.ident = ident
        self._files = {1: ident.samId.encode("ascii") + ident.hospitalId.encode("ascii"), 2: self._pub_der}
        self._current = [0]

    @property
    def card_id(self) -> str:
        return self.ident.samId

    def handle(self, apdu: Apdu) -> bytes:
        if apdu.ins == INS_READ_BINARY:
            return self._read(apdu, self._files, self._current)
        if apdu.ins == INS_INTERNAL_AUTH:
            return self._sign(apdu)
        return SW.INS.raw


class HpcCard(PinMixin, _KeyedCard):
    aid = AID[CardKind.HPC]
    kind = CardKind.HPC
    max_puk_tries = 10

    def __init__(self, ident: HpcIdentity, key: rsa.RSAPrivateKey) -> None:
        super().__init__(key)
        self.ident = ident
        self.pin_hash = ident.pinHash
        self.puk_hash = ident.pukHash
        self.tries_left = self.max_tries
        self.puk_tries_left = self.max_puk_tries
        self.pin_verified = False
        basic = ident.cardId.encode() + ident.idNo.encode() + pad_big5(ident.cName, 20) + ident.eName.encode("ascii").ljust(20, b" ")[:20]
        self._files = {1: basic}
        self._current = [0]

    @property
    def card_id(self) -> str:
        return self.ident.cardId

    def _on_reset(self) -> None:
        self.pin_verified = False

    def handle(self, apdu: Apdu) -> bytes:
        if apdu.ins == INS_VERIFY:
            return self._verify(apdu)
        if apdu.ins == INS_CHANGE:
            return self._change(apdu, 6)
        if apdu.ins == INS_RESET_RETRY:
            if self.puk_tries_left == 0:
                return SW.BLOCKED.raw
            puk, new = apdu.data[:8].decode("ascii", "replace"), apdu.data[8:].decode("ascii", "replace")
            if not check_secret(self.puk_hash, puk):
                self.puk_tries_left -= 1
                return SW.BLOCKED.raw if self.puk_tries_left == 0 else sw_tries(self.puk_tries_left)
            if not (6 <= len(new) <= 8 and new.isdigit()):
                return SW.WRONG_LENGTH.raw
            self.puk_tries_left = self.max_puk_tries
            self.pin_hash = hash_secret(new, os.urandom(9))
            self.tries_left = self.max_tries
            self.pin_verified = False
            return SW.OK.raw
        if not self.pin_verified and apdu.ins in (INS_READ_BINARY, INS_INTERNAL_AUTH):
            return SW.SECURITY.raw
        if apdu.ins == INS_READ_BINARY:
            return self._read(apdu, self._files, self._current)
        if apdu.ins == INS_INTERNAL_AUTH:
            return self._sign(apdu)
        return SW.INS.raw
