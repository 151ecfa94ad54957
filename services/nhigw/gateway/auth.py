"""HIS client authentication: per-client API keys, scoped to a hospital and its workstations.

Clients are listed in a JSON file (``nhigw gateway --clients FILE``)::

    {"clients": [{"name": "his-front-desk", "keySha256": "<hex>", "hospitalId": "3501200000",
                  "workstations": ["ws-0*"], "ops": false}]}

Only the SHA-256 of each key is stored; ``nhigw gateway add-client`` creates a key,
appends the entry and prints the key once. A request carries the key as
``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``. A client reaches only
workstations matching its patterns (fnmatch), only pass-through bodies of its own
``hospitalId``, only its own hospital's audit records; ``ops`` clients may also use the
ops endpoints (dead letters), for their own hospital's requests only. An operator of every
hospital is explicit: ``"allHospitals": true`` (``add-client --ops --all-hospitals``); an ops
client with neither a hospital nor ``allHospitals`` is refused the ops endpoints (403).

Zero-config (``nhigw up`` and a gateway started without ``--clients``): *open on loopback* —
every request is the built-in client ``local`` (all workstations, ops, all hospitals). The CLI refuses
to bind a gateway without clients to anything but a loopback address.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from nhigw.contracts.codes import Code, StatusError


@dataclass(frozen=True)
class Client:
    name: str
    hospitalId: str | None = None
    workstations: tuple[str, ...] = ("*",)
    ops: bool = False
    keySha256: str = ""
    allHospitals: bool = False  # an operator of every hospital (explicit; see the module docstring)

    def may_use(self, workstation: str) -> bool:
        return any(fnmatch.fnmatchcase(workstation, p) for p in self.workstations)

    def may_act_for(self, hospital_id: str | None) -> bool:
        return self.hospitalId is None or hospital_id is None or hospital_id == self.hospitalId

    def operates_for(self, hospital_id: str | None) -> bool:
        """Ops scope: may this operator see and act on a request of ``hospital_id`` (None: unknown)?"""
        return self.ops and (self.allHospitals or (self.hospitalId is not None and hospital_id == self.hospitalId))


OPEN = Client("local", None, ("*",), True, allHospitals=True)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Clients:
    clients: list[Client] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return not self.clients

    @classmethod
    def load(cls, path: Path | None) -> "Clients":
        if path is None or not Path(path).exists():
            return cls([])
        data = json.loads(Path(path).read_text())
        return cls([Client(c["name"], c.get("hospitalId"), tuple(c.get("workstations", ["*"])), bool(c.get("ops", False)), c["keySha256"], bool(c.get("allHospitals", False))) for c in data.get("clients", [])])

    @staticmethod
    def add(path: Path, name: str, hospital_id: str | None, workstations: list[str], ops: bool = False, *, all_hospitals: bool = False) -> str:
        """Append a client to ``path``; returns its new key (shown once, stored only as a hash)."""
        key = "nhigw_" + secrets.token_urlsafe(32)
        data = json.loads(Path(path).read_text()) if Path(path).exists() else {"clients": []}
        data["clients"] = [c for c in data["clients"] if c["name"] != name]
        entry: dict[str, object] = {"name": name, "keySha256": key_hash(key), "hospitalId": hospital_id, "workstations": workstations, "ops": ops}
        if all_hospitals:
            entry["allHospitals"] = True
        data["clients"].append(entry)
        Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False))
        return key

    def authenticate(self, request: web.Request) -> Client:
        if self.open:
            return OPEN
        auth = request.headers.get("Authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("X-Api-Key", "")
        if key:
            h = key_hash(key)
            for c in self.clients:
                if hmac.compare_digest(h, c.keySha256):
                    return c
        raise StatusError(Code.UNAUTHORIZED, "missing or unknown API key (Authorization: Bearer <key>)")


def forbid(detail: str) -> StatusError:
    return StatusError(Code.FORBIDDEN, detail)
