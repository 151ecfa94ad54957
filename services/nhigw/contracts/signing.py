"""The project's signature contract between cards, agents and the (simulated) NHI cloud.

The NHI's real signature format is not public. This project defines its own, written
down in ``proto/apdu-profile.md``: the SAM signs, with RSA-2048 PKCS#1 v1.5 over
SHA-256 (256-byte signatures, as the legacy ``安全簽章 256`` buffers expect), the
canonical message below. ``serviceType`` is inside the message, so the cloud checks
that it fits the route by verifying with the route's service type.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PREFIX = b"NHIGW-SIG-1"


def canonical_message(
    *,
    serviceType: str,
    clientRandom: str,
    samId: str,
    hospitalId: str,
    hcId: str | None = None,
    hcIdNo: str | None = None,
    hpcId: str | None = None,
    hpcIdNo: str | None = None,
) -> bytes:
    parts = [serviceType, clientRandom, samId, hospitalId, hcId or "", hcIdNo or "", hpcId or "", hpcIdNo or ""]
    return PREFIX + b"\n" + "\n".join(parts).encode("ascii")


def digest(message: bytes) -> bytes:
    """What the agent sends to the card's INTERNAL AUTHENTICATE (32 bytes)."""
    return hashlib.sha256(message).digest()


def verify(public_key_pem: str | bytes, message: bytes, signature_b64: str) -> bool:
    key = serialization.load_pem_public_key(public_key_pem if isinstance(public_key_pem, bytes) else public_key_pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        sig = base64.b64decode(signature_b64, validate=True)
        key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def dc_message(kind: str, *fields: str) -> bytes:
    """What a SAM signs to authenticate a DC request other than a business call (proto/dc-protocol.md).

    ``"NHIGW-DC-1\\n" + kind + "\\n" + "\\n".join(fields)``; e.g. kind ``VirtualHc/Verify`` with
    ``[purpose, token, clientRandom, samId, hospitalId]``. Verified like a 6.0 signature (``verify``).
    """
    return b"NHIGW-DC-1\n" + kind.encode("ascii") + b"\n" + "\n".join(fields).encode("utf-8")
