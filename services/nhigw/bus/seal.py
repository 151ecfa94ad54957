"""Sealing of bus payloads (AES-256-GCM).

Every message between the gateway and an agent after enrolment travels as a
``SealedEnvelope``: sealed with *that workstation's* agent key (issued at enrolment,
see ``nhigw.bus.enrol``), AAD = ``channel|workstation``. So nothing on Redis can read a
signature or a PIN, forge a call, answer for another workstation, or move a message
to another channel. ``Sealer`` is the primitive; with ``None`` it passes data through
(used only for the gateway key of an in-memory deployment).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

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


# ---------------------------------------------------------------- per-agent envelopes

def envelope_aad(channel: str, workstation: str) -> str:
    return f"{channel}|{workstation}"


def seal_envelope(key: bytes, channel: str, workstation: str, data: bytes) -> bytes:
    """Wrap ``data`` for ``channel`` as ``SealedEnvelope`` JSON, sealed with one agent's key."""
    from nhigw.contracts.models import SealedEnvelope

    blob = Sealer(key).seal(data, envelope_aad(channel, workstation))
    return SealedEnvelope(workstation=workstation, payload=base64.b64encode(blob).decode()).model_dump_json().encode()


def parse_envelope(raw: bytes) -> tuple[str, bytes]:
    """A ``SealedEnvelope``'s (workstation, sealed blob), not yet opened; ``SealError`` if it is not one."""
    from nhigw.contracts.models import SealedEnvelope

    try:
        env = SealedEnvelope.model_validate_json(raw)
        return env.workstation, base64.b64decode(env.payload, validate=True)
    except ValueError as exc:  # pydantic refuses deep nesting, huge numbers and bad UTF-8 as ValueError too
        raise SealError("not a sealed envelope") from exc


def open_envelope(key_for: Callable[[str], bytes | None], channel: str, raw: bytes) -> tuple[str, bytes]:
    """Open a ``SealedEnvelope``: ``key_for(workstation)`` gives that workstation's key (None: not enrolled).

    Raises ``SealError`` for anything not sealed by the named workstation's current key.
    """
    ws, blob = parse_envelope(raw)
    return ws, open_blob(key_for(ws), channel, ws, blob)


def open_blob(key: bytes | None, channel: str, workstation: str, blob: bytes) -> bytes:
    if key is None:
        raise SealError(f"workstation {workstation!r} is not enrolled")
    return Sealer(key).open(blob, envelope_aad(channel, workstation))
