"""The simulator's state in a file (``nhigw sim --state FILE``): SQLite (stdlib ``sqlite3``).

What is kept: everything the simulator learns (``SimStore``: institutions and SAM keys, patients
and test cards with their visits, treatments, prescriptions and marks, sequence- and treatment-
number counters, uploads, used client randoms, access tokens, idempotency records, the movable
clock, the call / write / execution counts, the test-card counter) and the data centre's virtual
HC state (``dc.VhcAuthority``: its HMAC key, the QR tokens with their use counts, the sessions).
Not kept: the fault rules (``POST /test/v1/Faults``, a test's setup) and the command-line switches
(``--admin``, ``--dedupe-writes``), which a restart takes from its command line again.

How it is written: after every request that may change state (every method but GET / HEAD /
OPTIONS), the whole state is saved in one SQLite transaction *before* the answer is sent
(``persist_middleware``), so a crash loses nothing the simulator answered. The save is done on
the event loop on purpose, with no ``await`` between the change and the commit: the business
handlers change the store without an ``await`` (``business.py``), so a snapshot taken there never
holds half of another request's change, and concurrent requests stay correct (sequence numbers
W001.. without gaps or duplicates, on the file as in memory). The cost is kept small: the state is
a developer's test data (pickled, a few hundred kB at most), WAL journal with
``synchronous=NORMAL`` (a committed transaction survives a crash or SIGKILL of the process; a power
cut may lose the last ones, acceptable for a development cloud).

A snapshot is a pickle read back with an allow-list of classes (the store's own dataclasses),
so a state file cannot make the simulator run code. The file holds only the simulator's test data
(seeded test patients and test cards; no PIN, no private key: SAMs are kept by their public keys)
and is created readable by its owner only. ``--reset`` starts from the seed again.
"""

from __future__ import annotations

import io
import os
import pickle
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from nhigw.common.logging import get_logger
from nhigw.sim.dc import VhcAuthority
from nhigw.sim.store import SimStore

log = get_logger("nhigw.sim.persist")

FORMAT = 1
STORE_EXCLUDED = frozenset({"faults", "vhc_issue", "admin_enabled", "dedupe_writes"})
VHC_KEPT = ("key", "tokens", "sessions")
_ALLOWED = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    *(("nhigw.sim.store", n) for n in ("Institution", "Treatment", "Patient", "UploadedFile", "IdemEntry")),
    *(("nhigw.sim.dc", n) for n in ("_Token", "_Session")),
}
READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"state file: {module}.{name} is not simulator state")
        return super().find_class(module, name)


class StateFile:
    """One SQLite file holding the latest snapshot of the simulator's state (table ``state``, one row)."""

    def __init__(self, path: str | Path, *, reset: bool = False) -> None:
        self.path = Path(path)
        if reset:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), format INTEGER NOT NULL, snapshot BLOB NOT NULL)")
        self.saves = 0

    def load_into(self, store: SimStore, vhc: VhcAuthority) -> bool:
        """Put the saved state into ``store`` and ``vhc``; False when the file holds none yet."""
        row = self.db.execute("SELECT format, snapshot FROM state WHERE id = 1").fetchone()
        if row is None:
            return False
        if row[0] != FORMAT:
            raise SystemExit(f"nhigw sim: {self.path} holds state format {row[0]}, this simulator writes {FORMAT}; start with --reset")
        snap = _Unpickler(io.BytesIO(row[1])).load()
        for name, value in snap["store"].items():
            if hasattr(store, name) and name not in STORE_EXCLUDED:
                setattr(store, name, value)
        for name in VHC_KEPT:
            setattr(vhc, name, snap["vhc"][name])
        return True

    def save(self, store: SimStore, vhc: VhcAuthority) -> None:
        """The whole state in one transaction (replacing the previous snapshot)."""
        snap = {
            "store": {k: v for k, v in vars(store).items() if k not in STORE_EXCLUDED},
            "vhc": {k: getattr(vhc, k) for k in VHC_KEPT},
        }
        blob = pickle.dumps(snap, protocol=pickle.HIGHEST_PROTOCOL)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO state (id, format, snapshot) VALUES (1, ?, ?)", (FORMAT, blob))
        self.saves += 1

    def close(self) -> None:
        self.db.close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def persist_middleware(save: Callable[[], None]) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Save the state after every request that may change it, before its answer is sent."""

    @web.middleware
    async def mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            if request.method not in READ_ONLY:
                save()

    return mw
