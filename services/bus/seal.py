"""Sealing of bus payloads that carry signatures (AES-256-GCM with a shared bus key).

Signature calls and replies cross Redis; nothing there may read a full signature or
forge a call. With a key (``NHIGW_BUS_KEY``, 32 bytes base64, the same on gateway
and agents) every call/reply is sealed with AAD = its channel, so it cannot be
replayed to another workstation. Without a key (in-process bus only) payloads pass
as they are; ``nhigw`` refuses to run a Redis bus without a key.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"S1"


class SealError(Exception):
    pass


class Sealer:
    def __init__(self, key: bytes | None) -> None:
        if key is not None and len(key) != 32:
            raise ValueError("bus key must be 32 bytes")
        self._aead = AESGCM(key) if key else None

    @classmethod
    def from_b64(cls, value: str | None) -> "Sealer":
        return cls(base64.b64decode(value) if value else None)

    @staticmethod
    def new_key_b64() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    @property
    def enabled(self) -> bool:
        return self._aead is not None

    def seal(self, data: bytes, aad: str) -> bytes:
        if self._aead is None:
            return data
        nonce = os.urandom(12)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, aad.encode())

    def open(self, blob: bytes, aad: str) -> bytes:
        if self._aead is None:
            return blob
        if not blob.startswith(MAGIC):
            raise SealError("unsealed message on a sealed bus")
        try:
            return self._aead.decrypt(blob[2:14], blob[14:], aad.encode())
        except Exception as exc:  # InvalidTag
            raise SealError("message not sealed with this bus key") from exc
