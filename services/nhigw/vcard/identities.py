"""Test identities (``data/identities.json``) and the virtual cards' keys.

Card keys are RSA-2048, generated on first use. With a data directory they are kept
there sealed with ``SecretBox`` (never in plain text); without one they live in memory
for the life of the process. PINs exist in the data file only as salted SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nhigw.common.secretbox import SecretBox


@dataclass(frozen=True)
class SamIdentity:
    samId: str
    hospitalId: str
    hospitalName: str = ""
    hospitalShortName: str = ""


@dataclass(frozen=True)
class HcIdentity:
    cardNo: str
    name: str
    idNo: str
    birthday: str
    sex: str
    dateIssue: str
    pinHash: str | None = None


@dataclass(frozen=True)
class HpcIdentity:
    cardId: str
    idNo: str
    cName: str
    eName: str
    pinHash: str
    pukHash: str


@dataclass
class Identities:
    sams: dict[str, SamIdentity] = field(default_factory=dict)
    hcs: dict[str, HcIdentity] = field(default_factory=dict)
    hpcs: dict[str, HpcIdentity] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> "Identities":
        if path is None:
            raw = resources.files("nhigw.vcard").joinpath("data/identities.json").read_text(encoding="utf-8")
        else:
            raw = Path(path).read_text(encoding="utf-8")
        data: dict[str, Any] = json.loads(raw)
        return cls(
            sams={d["samId"]: SamIdentity(**d) for d in data.get("sams", [])},
            hcs={d["cardNo"]: HcIdentity(**d) for d in data.get("hcs", [])},
            hpcs={d["cardId"]: HpcIdentity(**d) for d in data.get("hpcs", [])},
        )


def hash_secret(secret: str, salt: bytes) -> str:
    return "sha256:" + salt.hex() + ":" + hashlib.sha256(salt + secret.encode()).hexdigest()


def check_secret(stored: str, candidate: str) -> bool:
    try:
        _algo, salt_hex, digest_hex = stored.split(":")
    except ValueError:
        return False
    got = hashlib.sha256(bytes.fromhex(salt_hex) + candidate.encode()).hexdigest()
    return hmac.compare_digest(got, digest_hex)


class KeyStore:
    """RSA keys of the virtual cards, one per card id."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        self._box = SecretBox(self.data_dir, "vcard-keys") if self.data_dir else None
        self._keys: dict[str, rsa.RSAPrivateKey] = {}

    def key(self, card_id: str) -> rsa.RSAPrivateKey:
        if card_id in self._keys:
            return self._keys[card_id]
        key: rsa.RSAPrivateKey | None = None
        path = self.data_dir / "keys" / f"{card_id}.key.sealed" if self.data_dir else None
        if path is not None and self._box is not None and path.exists():
            loaded = serialization.load_der_private_key(self._box.read(path), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            key = loaded
        if key is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if path is not None and self._box is not None:
                der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                self._box.write(path, der)
        self._keys[card_id] = key
        return key

    def public_pem(self, card_id: str) -> str:
        return self.key(card_id).public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
