"""Cloud SAMs (雲端安全模組): a SAM as a file, signing in software, kept sealed on this machine.

The file (format ``nhigw-cloud-sam-1``, ``CloudSamFile``; proto/dc-protocol.md) is issued by
the simulator's test-card API (``POST /test/v1/CloudSam/Issue``), which registers the public
key with its DC. Importing it (``POST /api/common/v1/Settings/CloudSam`` or
``nhigw sam import FILE``) checks it (1610 on any format error) and stores it sealed with
``SecretBox`` (AES-256-GCM under a key bound to this machine and OS user, purpose
``cloud-sam``) as ``<data dir>/cloudsam/<samId>.sam.sealed``. As the seed says, the original
file can then be deleted, and a copy of the data directory on another machine or user does
not open: such a SAM is listed as unusable and ``Initial`` with its id answers 9202.

A ``CloudSam`` signs like a physical SAM (``SamDevice`` in ``nhigw.agent.core``): a random
8-byte ``clientRandom`` and an RSA PKCS#1 v1.5 signature over SHA-256, so ``Agent.sign``
does not know which kind it has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pydantic import ValidationError

from nhigw.common.http import loads_json
from nhigw.common.logging import get_logger
from nhigw.common.secretbox import SecretBox, SecretBoxError
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import CloudSamFile, CloudSamInfo

log = get_logger("nhigw.agent.cloudsam")
PURPOSE = "cloud-sam"


@dataclass
class CloudSam:
    file: CloudSamFile
    key: rsa.RSAPrivateKey
    cloud: bool = True

    @property
    def sam_id(self) -> str:
        return self.file.samId

    @property
    def hospital_id(self) -> str:
        return self.file.hospitalId

    async def client_random(self) -> bytes:
        return os.urandom(8)

    async def sign_digest(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        return self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))

    def info(self) -> CloudSamInfo:
        f = self.file
        return CloudSamInfo(samId=f.samId, hospitalId=f.hospitalId, hospitalName=f.hospitalName, hospitalShortName=f.hospitalShortName)


def parse_cloud_sam(raw: bytes) -> CloudSam:
    """Check a cloud SAM file (pure: no I/O). Anything wrong is 1610."""
    try:
        f = CloudSamFile.model_validate(loads_json(raw))
    except (ValueError, ValidationError, StatusError) as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()) if isinstance(exc, ValidationError) else "not JSON"
        raise StatusError(Code.CLOUD_SAM_FORMAT, f"not a cloud SAM file ({fields})") from None
    try:
        key = serialization.load_pem_private_key(f.privateKeyPem.encode(), password=None)
    except (ValueError, TypeError):
        raise StatusError(Code.CLOUD_SAM_FORMAT, "the cloud SAM file's key does not load") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != 2048:
        raise StatusError(Code.CLOUD_SAM_FORMAT, "the cloud SAM key must be RSA-2048")
    return CloudSam(f, key)


class CloudSamStore:
    """Imported cloud SAMs: sealed files in ``<data dir>/cloudsam/`` (or memory only without a data dir)."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.dir = Path(data_dir) / "cloudsam" if data_dir else None
        self._box = SecretBox(Path(data_dir), PURPOSE) if data_dir else None
        self._mem: dict[str, bytes] = {}

    def _path(self, sam_id: str) -> Path:
        assert self.dir is not None
        return self.dir / f"{sam_id}.sam.sealed"

    def import_file(self, raw: bytes) -> CloudSam:
        sam = parse_cloud_sam(raw)
        if self._box is not None:
            self._box.write(self._path(sam.sam_id), sam.file.model_dump_json().encode())
        else:
            self._mem[sam.sam_id] = sam.file.model_dump_json().encode()
        log.info("cloud_sam_imported", samId=sam.sam_id, hospitalId=sam.hospital_id)
        return sam

    def ids(self) -> list[str]:
        if self.dir is None:
            return sorted(self._mem)
        if not self.dir.exists():
            return []
        return sorted(p.name.removesuffix(".sam.sealed") for p in self.dir.glob("*.sam.sealed"))

    def get(self, sam_id: str) -> CloudSam:
        """An imported cloud SAM, unsealed. 1611 if none by that id; 9202 if sealed on another machine/user."""
        if self.dir is None:
            raw = self._mem.get(sam_id)
            if raw is None:
                raise StatusError(Code.CLOUD_SAM_NOT_FOUND, f"no cloud SAM {sam_id}")
            return parse_cloud_sam(raw)
        path = self._path(sam_id)
        if not path.exists():
            raise StatusError(Code.CLOUD_SAM_NOT_FOUND, f"no cloud SAM {sam_id}")
        assert self._box is not None
        try:
            raw = self._box.read(path)
        except SecretBoxError:
            raise StatusError(Code.CLOUD_SAM_OTHER_HOST, f"cloud SAM {sam_id} was sealed on another machine or user; import the file again here") from None
        return parse_cloud_sam(raw)

    def usable(self, sam_id: str) -> bool:
        try:
            self.get(sam_id)
        except StatusError:
            return False
        return True

    def infos(self) -> list[CloudSamInfo]:
        out: list[CloudSamInfo] = []
        for i, sam_id in enumerate(self.ids()):
            try:
                info = self.get(sam_id).info()
            except StatusError as err:
                info = CloudSamInfo(samId=sam_id, hospitalId="", usable=False, error=f"{err.code}: {err.detail}")
            out.append(info.model_copy(update={"comPort": f"COMX{i + 1}"}))
        return out

    def remove(self, sam_id: str) -> None:
        if self.dir is None:
            if self._mem.pop(sam_id, None) is None:
                raise StatusError(Code.CLOUD_SAM_NOT_FOUND, f"no cloud SAM {sam_id}")
            return
        path = self._path(sam_id)
        if not path.exists():
            raise StatusError(Code.CLOUD_SAM_NOT_FOUND, f"no cloud SAM {sam_id}")
        path.unlink()
