"""At-rest encryption bound to this machine and user (AES-256-GCM).

The key-encryption key is HKDF(SHA-256) over a random 32-byte file kept with mode
0600 in the service's data directory, this machine's identity (:func:`machine_identity`)
and the user id, or over ``NHIGW_MASTER_KEY`` when set (containers, whose machine identity
is not stable). A copy of the encrypted file on another machine or user does not open.

The machine identity, one small seam per platform (:data:`IDENTITY_SOURCES`):

- Linux (and other POSIX): ``/etc/machine-id``, else ``/var/lib/dbus/machine-id``
  (:data:`MACHINE_ID_FILES`); an empty file or systemd's ``uninitialized`` counts as none.
- Windows: ``HKLM\\SOFTWARE\\Microsoft\\Cryptography\\MachineGuid`` (the 64-bit view),
  written by Windows setup, unique per installation (a sysprep'ed image gets a new one).
- macOS: ``IOPlatformUUID`` of ``ioreg -rd1 -c IOPlatformExpertDevice`` (the hardware UUID).

Where none can be found, sealing is refused (:class:`NoMachineIdentity`, a clear error naming
``NHIGW_MASTER_KEY``), never bound to a constant: a file sealed under a constant would open on
every machine. Choice (the seed is silent beyond "a SAM file is bound to one PC and user"):
the user part is the numeric uid on POSIX and the account name on Windows (a service's
virtual account ``NT SERVICE\\nhigw-agent`` is its own user there).
"""

from __future__ import annotations

import base64
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


class NoMachineIdentity(SecretBoxError):
    """This machine has no identity to bind sealed files to: refuse rather than seal under a constant."""


MACHINE_ID_FILES: tuple[str, ...] = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def posix_machine_id() -> bytes | None:
    for p in MACHINE_ID_FILES:
        try:
            v = Path(p).read_bytes().strip()
        except OSError:
            continue
        if v and v != b"uninitialized":
            return v
    return None


def windows_machine_guid() -> bytes | None:
    try:
        winreg: Any = importlib.import_module("winreg")  # Windows only (typed as such, hence Any)
    except ImportError:
        return None
    try:
        access = winreg.KEY_READ | getattr(winreg, "KEY_WOW64_64KEY", 0)  # a 32-bit Python reads the 64-bit view too
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography", 0, access) as k:
            value, _ = winreg.QueryValueEx(k, "MachineGuid")
    except OSError:
        return None
    return str(value).strip().encode() or None


def parse_ioreg_uuid(text: str) -> bytes | None:
    """``IOPlatformUUID`` out of ``ioreg -rd1 -c IOPlatformExpertDevice`` output."""
    m = re.search(r'"IOPlatformUUID"\s*=\s*"([0-9A-Fa-f-]{16,})"', text)
    return m.group(1).encode() if m else None


def macos_platform_uuid() -> bytes | None:
    try:
        out = subprocess.run(["/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_ioreg_uuid(out)


# sys.platform -> the seam that reads that platform's machine identity (None: it has none)
IDENTITY_SOURCES: dict[str, Callable[[], bytes | None]] = {"win32": windows_machine_guid, "darwin": macos_platform_uuid}


def machine_identity(platform: str | None = None) -> bytes:
    """This machine's identity (as read, so files sealed before this seam still open); :class:`NoMachineIdentity` when there is none."""
    platform = platform or sys.platform
    ident = IDENTITY_SOURCES.get(platform, posix_machine_id)()
    if not ident:
        raise NoMachineIdentity(
            f"no machine identity found on {platform} (machine-id, MachineGuid or IOPlatformUUID): refusing to seal "
            "under a constant; set NHIGW_MASTER_KEY (a random secret kept with this machine) instead"
        )
    return ident


def sealing_source() -> str:
    """What sealed files here are bound to (``NHIGW_MASTER_KEY`` or the machine identity); :class:`NoMachineIdentity` if nothing."""
    if os.environ.get("NHIGW_MASTER_KEY"):
        return "NHIGW_MASTER_KEY"
    machine_identity()
    return f"this machine's identity ({sys.platform})"


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
            ident = machine_identity()  # before anything is written: no identity, no key file
            private_dir(self.data_dir)
            f = self.data_dir / ".box.key"
            if not f.exists():
                fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(os.urandom(32))
            seed = f.read_bytes() + ident + _user_id()
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
