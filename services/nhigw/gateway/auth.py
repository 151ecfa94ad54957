"""HIS client and operator authentication: per-client API keys, scoped to a hospital and its workstations.

Clients are listed in a JSON file (``nhigw gateway --clients FILE``)::

    {"clients": [{"name": "his-front-desk", "keySha256": "<hex>", "hospitalId": "3501200000",
                  "workstations": ["ws-0*"]},
                 {"name": "it-desk", "keySha256": "<hex>", "hospitalId": "3501200000", "role": "operator"}]}

Only the SHA-256 of each key is stored; ``nhigw gateway add-client`` (or an admin's
``POST /api/admin/clients``) creates a key, writes the entry and shows the key once. A request
carries the key as ``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``. A client reaches only
workstations matching its patterns (fnmatch), only pass-through bodies of its own ``hospitalId``,
only its own hospital's audit records.

**Roles.** An operator key carries a ``role`` (``Role``): ``viewer`` (dashboard, queue, dead letters,
request browser, audit: looking), ``operator`` (also retry / resend / discard dead letters, bounded
bulk retries, agent settings: acting), ``admin`` (also HIS clients and enrolment tokens). What each
needs is one table, ``NEEDS``; ``Client.may(action)`` is the one decision. Every operator key is
scoped to one hospital (``hospitalId``) or, explicitly, to all (``"allHospitals": true``); one with
neither is refused every operator action (403). An old file's ``"ops": true`` reads as ``operator``.
An HIS client (no role) makes business calls and reads its hospital's audit, nothing else.

The gateway re-reads the clients file when it changes (checked at most once a second), so a client
added by ``add-client`` or by an admin through the API on one replica reaches every replica that
reads the same file without a restart.

Zero-config (``nhigw up`` and a gateway started without ``--clients``): *open on loopback* —
every request is the built-in client ``local`` (all workstations, admin of all hospitals; no clients
file, so no clients to manage). The CLI refuses to bind a gateway without clients to anything but a
loopback address.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from aiohttp import web

from nhigw.contracts.codes import Code, StatusError


class Role(StrEnum):
    """An operator key's role; each includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class Action(StrEnum):
    """What an operator key does, by name (the rows of README's roles table)."""

    DASHBOARD = "dashboard"  # the ops views: queue, dead letters and their history, history, request browser
    AUDIT = "audit"  # audit records and the chain check
    DEAD_LETTERS = "dead-letters"  # retry, resend, discard, bulk retry
    AGENT_SETTINGS = "agent-settings"  # component calls an HIS may not make (settings, cloud SAM files, the record)
    CLIENTS = "clients"  # HIS clients and operator keys
    ENROL = "enrol"  # agents' one-time enrolment tokens


NEEDS: dict[Action, Role] = {
    Action.DASHBOARD: Role.VIEWER,
    Action.AUDIT: Role.VIEWER,
    Action.DEAD_LETTERS: Role.OPERATOR,
    Action.AGENT_SETTINGS: Role.OPERATOR,
    Action.CLIENTS: Role.ADMIN,
    Action.ENROL: Role.ADMIN,
}


@dataclass(frozen=True)
class Client:
    name: str
    hospitalId: str | None = None
    workstations: tuple[str, ...] = ("*",)
    role: Role | None = None  # None: an HIS client
    keySha256: str = ""
    allHospitals: bool = False  # an operator of every hospital (explicit; see the module docstring)

    @property
    def ops(self) -> bool:
        return self.role is not None

    def may_use(self, workstation: str) -> bool:
        return any(fnmatch.fnmatchcase(workstation, p) for p in self.workstations)

    def may_act_for(self, hospital_id: str | None) -> bool:
        return self.hospitalId is None or hospital_id is None or hospital_id == self.hospitalId

    def may(self, action: Action) -> bool:
        """Pure: does this key's role allow ``action`` at all (its hospital scope decides which records)?"""
        return self.role is not None and RANK[self.role] >= RANK[NEEDS[action]] and (self.allHospitals or self.hospitalId is not None)

    def operates_for(self, hospital_id: str | None) -> bool:
        """Ops scope: may this operator see and act on a request of ``hospital_id`` (None: unknown)?"""
        return self.ops and (self.allHospitals or (self.hospitalId is not None and hospital_id == self.hospitalId))

    def need(self, action: Action) -> None:
        """403 unless ``may(action)``, saying what is missing."""
        if self.may(action):
            return
        if self.role is None:
            raise forbid(f"client {self.name!r} is an HIS client: {action.value} needs an operator key with role {NEEDS[action].value} or higher")
        if not (self.allHospitals or self.hospitalId is not None):
            raise forbid("an operator needs a hospitalId, or allHospitals: true for every hospital")
        raise forbid(f"{action.value} needs role {NEEDS[action].value} or higher; {self.name!r} is {self.role.value}")

    def manages(self, other: "Client") -> bool:
        """Pure: may this admin create, see or remove ``other``? One of its own hospital (never an
        all-hospitals key), or, for an all-hospitals admin, any."""
        if not self.may(Action.CLIENTS):
            return False
        return self.allHospitals or (other.hospitalId == self.hospitalId and not other.allHospitals)

    def public(self) -> dict[str, object]:
        """The entry as the admin API shows it (no key hash)."""
        return {"name": self.name, "hospitalId": self.hospitalId, "workstations": list(self.workstations), "role": self.role.value if self.role else None, "allHospitals": self.allHospitals}


OPEN = Client("local", None, ("*",), Role.ADMIN, allHospitals=True)


def _role(entry: dict[str, object]) -> Role | None:
    role = entry.get("role")
    if role is not None:
        return Role(str(role))
    return Role.OPERATOR if entry.get("ops") else None  # a file written before roles


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Clients:
    clients: list[Client] = field(default_factory=list)
    path: Path | None = None  # the file they came from: re-read when it changes
    _stamp: tuple[int, int] | None = None
    _checked: float = 0.0

    @property
    def open(self) -> bool:
        return not self.clients and self.path is None

    @staticmethod
    def parse(data: dict[str, object]) -> list[Client]:
        entries = data.get("clients", [])
        assert isinstance(entries, list)
        return [Client(c["name"], c.get("hospitalId"), tuple(c.get("workstations", ["*"])), _role(c), c["keySha256"], bool(c.get("allHospitals", False))) for c in entries]

    @classmethod
    def load(cls, path: Path | None) -> "Clients":
        if path is None or not Path(path).exists():
            return cls([])
        out = cls([], Path(path))
        out._reload()
        return out

    def reload(self) -> None:
        """Re-read the file now (after this process wrote it)."""
        if self.path is not None:
            self._reload()

    def _reload(self) -> None:
        assert self.path is not None
        st = os.stat(self.path)
        self._stamp = (st.st_mtime_ns, st.st_size)
        self.clients = self.parse(json.loads(self.path.read_text()))

    def refresh(self) -> None:
        """Re-read the file if it changed (at most one stat a second); a file that went bad keeps the last good list."""
        now = time.monotonic()
        if self.path is None or now - self._checked < 1.0:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self._reload()
        except (OSError, ValueError, KeyError):
            pass

    @staticmethod
    def add(path: Path, name: str, hospital_id: str | None, workstations: list[str], ops: bool = False, *, all_hospitals: bool = False, role: Role | None = None) -> str:
        """Append (or replace) a client in ``path``; returns its new key (shown once, stored only as a hash)."""
        role = role or (Role.OPERATOR if ops else None)
        key = "nhigw_" + secrets.token_urlsafe(32)
        data = json.loads(Path(path).read_text()) if Path(path).exists() else {"clients": []}
        data["clients"] = [c for c in data["clients"] if c["name"] != name]
        entry: dict[str, object] = {"name": name, "keySha256": key_hash(key), "hospitalId": hospital_id, "workstations": workstations}
        if role is not None:
            entry["role"] = role.value
        if all_hospitals:
            entry["allHospitals"] = True
        data["clients"].append(entry)
        _write(Path(path), data)
        return key

    @staticmethod
    def remove(path: Path, name: str) -> bool:
        data = json.loads(Path(path).read_text())
        kept = [c for c in data["clients"] if c["name"] != name]
        if len(kept) == len(data["clients"]):
            return False
        data["clients"] = kept
        _write(Path(path), data)
        return True

    def authenticate(self, request: web.Request) -> Client:
        if self.open:
            return OPEN
        self.refresh()
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


def _write(path: Path, data: object) -> None:
    """Replace the file in one step (a replica re-reading it never sees half a file); 0600: key hashes."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
