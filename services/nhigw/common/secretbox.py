"""At-rest encryption bound to this machine and user (AES-256-GCM).

The key-encryption key is HKDF(SHA-256) over a random 32-byte file kept with mode
0600 in the service's data directory, this machine's ``/etc/machine-id`` and the
user id, or over ``NHIGW_MASTER_KEY`` when set (containers, where machine-id is not
stable). A copy of the encrypted file on another machine or user does not open.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"NHIGWBOX1"


class SecretBoxError(Exception):
    pass


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) 0700; an existing directory of this user is made 0700 too."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if hasattr(os, "getuid") and path.stat().st_uid == os.getuid():
            path.chmod(0o700)
    except OSError:
        pass
    return path


def _machine_id() -> bytes:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(p).read_bytes().strip()
        except OSError:
            continue
    return b"no-machine-id"


def _user_id() -> bytes:
    """The numeric uid on POSIX; the account name on Windows (which has no ``os.getuid``)."""
    if hasattr(os, "getuid"):
        return str(os.getuid()).encode()
    import getpass

    return getpass.getuser().encode()


class SecretBox:
    def __init__(self, data_dir: Path, purpose: str) -> None:
        self.data_dir = Path(data_dir)
        self.purpose = purpose
        self._key = self._derive()

    def _derive(self) -> bytes:
        env = os.environ.get("NHIGW_MASTER_KEY")
        if env:
            seed = env.encode()
        else:
            private_dir(self.data_dir)
            f = self.data_dir / ".box.key"
            if not f.exists():
                fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(os.urandom(32))
            seed = f.read_bytes() + _machine_id() + _user_id()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"nhigw", info=self.purpose.encode()).derive(seed)

    def password(self) -> bytes:
        """A password for formats that encrypt themselves (the TLS key's PKCS#8 PEM), bound like ``seal``."""
        return base64.b64encode(self._key)

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return MAGIC + nonce + AESGCM(self._key).encrypt(nonce, plaintext, self.purpose.encode())

    def open(self, blob: bytes) -> bytes:
        if not blob.startswith(MAGIC):
            raise SecretBoxError("not a sealed file")
        nonce, ct = blob[len(MAGIC) : len(MAGIC) + 12], blob[len(MAGIC) + 12 :]
        try:
            return AESGCM(self._key).decrypt(nonce, ct, self.purpose.encode())
        except Exception as exc:  # cryptography raises InvalidTag
            raise SecretBoxError("cannot open: wrong machine, user or key") from exc

    def write(self, path: Path, plaintext: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.seal(plaintext))
        os.replace(tmp, path)

    def read(self, path: Path) -> bytes:
        return self.open(Path(path).read_bytes())
