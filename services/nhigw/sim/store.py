"""The simulator's data: institutions and their SAM keys, patients with their insurance data,
sequence-number counters, used client randoms, idempotency records, fault rules, counters.

Patient data is personal data: it lives only in this process's memory. The seed
(``data/patients.json``, test data only) gives the test cards of ``vcard/data/identities.json``
their insurance data and adds patients that have no virtual card (for SAM-signed routes and
for rule tests: an expired card, a card with no visits left, an uninsured person).

Sequence numbers (就醫序號): per institution per day, ``W001`` .. ``W999`` (the seed: "就醫序號改為
W***"; 4 characters as in the legacy 296-byte layout). Issued in order with no gaps and no
duplicates (the counter is advanced without an ``await`` in between, so concurrent calls on the
event loop cannot interleave); a rolled-back number is not reused. Only 就醫類別 01-09 take a
number and use up an available visit; other categories (AA..CA) answer ``sequenceNumber`` "".

Treatment numbers (就醫識別碼, 20 characters): institution ID (10) + ROC date (7) + a per-
institution per-day counter in base 36 (3, ``001``..``ZZZ``), unique per institution and day.

Time: ``now()`` is the wall clock shifted by ``clock_offset_s`` (``POST /test/v1/Clock``), so
tests of the 24-hour rollback and 1-hour upload rules need not wait.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import random
import string
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nhigw.common.roctime import roc_date, taiwan_now
from nhigw.contracts.cloud import Fault
from nhigw.contracts.codes import Code, StatusError
from nhigw.vcard.identities import Identities

B36 = string.digits + string.ascii_uppercase
SEQ_MAX = 999
COUNTING_ITEMS = {f"0{i}" for i in range(1, 10)}  # 就醫類別 01-09 take a sequence number and a visit
SIGNATURE_FIELDS = frozenset({"signature", "clientRandom", "samId", "serviceType", "hcId", "hpcId", "hpcIdNo"})


def write_content_key(route: str, body: dict[str, Any]) -> str:
    """What makes two executions of a write "the same write", whatever their signatures and keys.

    The real cloud executes a write again when it comes again with a fresh, valid signature (a
    one-call gateway re-signs on every delivery), so the simulator counts executions by content:
    the route, the institution (``hospitalId``), the patient (``hcIdNo`` / ``patientId``) and every
    business field the HIS sent (treatment date-time, sequence number, the upload file, the
    phone number ...), i.e. the body without its signature object. A hash, so that the counts
    (``GET /test/v1/Stats``, ``writesByContent``) hold no personal data.
    """
    fields = {k: v for k, v in body.items() if k not in SIGNATURE_FIELDS}
    canon = json.dumps([route.lower(), fields], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:24]


@dataclass
class Institution:
    hospitalId: str
    hospitalName: str = ""
    hospitalShortName: str = ""
    contract: str = "active"  # active | over | suspended | cancelled


@dataclass
class Treatment:
    hospitalId: str
    treatDateTime: str
    treatmentItem: str
    babyTreatment: str
    afterCheck: str
    sequenceNumber: str
    treatmentNumber: str
    created_s: float  # simulator clock, epoch seconds
    counting: bool
    rolledBack: bool = False
    codes: dict[str, str] = field(default_factory=dict)  # mainCode, subCode1..5
    fees: dict[str, int] = field(default_factory=dict)  # outpatientFee, costFee, ...

    @property
    def written(self) -> bool:
        return bool(self.codes.get("mainCode")) or any(self.fees.values())


@dataclass
class Patient:
    cardSn: str
    name: str
    idCardNum: str
    birthday: str
    sex: str
    dateIssue: str
    cancelTermination: str = "1"  # '1' normal, '2' cancelled
    emergentTel: str = ""
    insurerCode: str = ""
    insurerId: str = ""
    cardValidity: str = "1201231"
    treatmentCounter: str = "06"
    newbornBirthday: str = ""
    newbornBaby: str = ""
    identityStatus: str = "3"
    insuranceStatus: str = "1"  # '1' insured, '2' not insured, '3' suspended / in arrears
    organDonate: str = ""
    palliativeCare: str = ""
    isForeigner: bool = False
    testCardOf: str | None = None  # hospitalId that applied for this virtual test card
    criticalIllnesses: list[dict[str, str]] = field(default_factory=list)
    prescriptions: list[dict[str, str]] = field(default_factory=list)
    allergies: dict[int, dict[str, Any]] = field(default_factory=dict)  # slot 1..3
    inoculations: list[dict[str, str]] = field(default_factory=list)
    preventiveCares: list[dict[str, str]] = field(default_factory=list)
    pregnantChecks: list[dict[str, str]] = field(default_factory=list)
    treatments: list[Treatment] = field(default_factory=list)


@dataclass(frozen=True)
class UploadedFile:
    """An accepted IC-data upload, its XML parsed (``root``: the document's root element) and kept."""

    opcode: str
    hospitalId: str
    samId: str
    sType: str
    root: str
    xml: bytes


@dataclass
class IdemEntry:
    body_hash: str
    status: int
    body: dict[str, Any]


@dataclass
class FaultState:
    rule: Fault
    remaining: int | None
    rng: random.Random


def _load_seed() -> dict[str, Any]:
    raw = resources.files("nhigw.sim").joinpath("data/patients.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(raw)
    return data


def _patient_from(base: dict[str, Any], extra: dict[str, Any]) -> Patient:
    fields = {**base, **extra}
    treatments = [Treatment(created_s=0.0, counting=t.get("treatmentItem", "01") in COUNTING_ITEMS, **t) for t in fields.pop("treatments", [])]
    allergies = {int(k): v for k, v in fields.pop("allergies", {}).items()}
    fields.pop("_comment", None)
    return Patient(treatments=treatments, allergies=allergies, **fields)


@dataclass
class SimStore:
    institutions: dict[str, Institution] = field(default_factory=dict)
    sam_keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # samId -> (hospitalId, public key PEM)
    patients_by_id: dict[str, Patient] = field(default_factory=dict)
    challenges: dict[str, tuple[str, float]] = field(default_factory=dict)  # challenge b64 -> (samId, expiry)
    used_randoms: "OrderedDict[str, float]" = field(default_factory=OrderedDict)
    random_window_s: float = 24 * 3600
    max_randoms: int = 1_000_000
    calls: dict[str, int] = field(default_factory=dict)  # route -> count (tests count upstream calls)
    writes: dict[str, int] = field(default_factory=dict)  # route -> executed writes
    writes_by_key: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> executed writes
    writes_by_content: dict[str, int] = field(default_factory=dict)  # content key (``write_content_key``) -> executed writes
    dedupe_writes: bool = False  # opt-in (``nhigw sim --dedupe-writes``): answer a write again by its Idempotency-Key
    replays: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> cached answers served
    idem: dict[str, IdemEntry] = field(default_factory=dict)
    seq_counters: dict[tuple[str, str], int] = field(default_factory=dict)  # (hospitalId, ROC date) -> last W number
    tn_counters: dict[tuple[str, str], int] = field(default_factory=dict)  # (hospitalId, ROC date) -> last treatment-number counter
    uploads: set[tuple[str, str]] = field(default_factory=set)  # (hospitalId, sha256 of the XML) of formal (A1) uploads
    upload_counter: int = 0
    uploaded: list[UploadedFile] = field(default_factory=list)  # accepted uploads, oldest first (the last ``uploaded_max``)
    uploaded_max: int = 1000
    access_tokens: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # accessToken -> (idNo, hospitalId, expiry)
    faults: list[FaultState] = field(default_factory=list)
    admin_enabled: bool = False  # faults, clock (``nhigw sim --admin``)
    test_card_counter: int = 0
    clock_offset_s: float = 0.0
    test_cards_max: int = 10
    vhc_issue: Callable[[str, float], str] | None = None  # set by the app: issue a virtual HC QR token for a card

    # ------------------------------------------------------------------ seeding

    @classmethod
    def seeded(cls, identities: Identities | None = None) -> "SimStore":
        ids = identities or Identities.load()
        seed = _load_seed()
        store = cls()
        for sam in ids.sams.values():
            store.institutions.setdefault(sam.hospitalId, Institution(sam.hospitalId, sam.hospitalName, sam.hospitalShortName))
        insurance = seed.get("insurance", {})
        for hc in ids.hcs.values():
            base = {"cardSn": hc.cardNo, "name": hc.name, "idCardNum": hc.idNo, "birthday": hc.birthday, "sex": hc.sex, "dateIssue": hc.dateIssue}
            store.patients_by_id[hc.idNo] = _patient_from(base, insurance.get(hc.idNo, {}))
        for extra in seed.get("patients", []):
            store.patients_by_id[extra["idCardNum"]] = _patient_from({}, extra)
        return store

    # ------------------------------------------------------------------ time

    def now(self) -> dt.datetime:
        return taiwan_now() + dt.timedelta(seconds=self.clock_offset_s)

    def now_s(self) -> float:
        return time.time() + self.clock_offset_s

    # ------------------------------------------------------------------ SAM / signatures

    def register_sam(self, sam_id: str, hospital_id: str, public_key_pem: str) -> None:
        """Provision a SAM's public key (RSA PEM; anything else is 1706, never stored)."""
        try:
            key = serialization.load_pem_public_key(public_key_pem.encode())
        except (ValueError, UnicodeEncodeError) as exc:
            raise StatusError(Code.PARAM_VALUE, "publicKeyPem is not a PEM public key") from exc
        if not isinstance(key, rsa.RSAPublicKey) or not sam_id or not hospital_id:
            raise StatusError(Code.PARAM_VALUE, "an RSA public key, a samId and a hospitalId are required")
        self.sam_keys[sam_id] = (hospital_id, public_key_pem)
        self.institutions.setdefault(hospital_id, Institution(hospital_id))

    def new_challenge(self, sam_id: str, ttl_s: float = 120) -> str:
        ch = base64.b64encode(os.urandom(32)).decode()
        self.challenges[ch] = (sam_id, time.time() + ttl_s)
        return ch

    def take_challenge(self, ch: str, sam_id: str) -> bool:
        entry = self.challenges.pop(ch, None)
        return entry is not None and entry[0] == sam_id and entry[1] >= time.time()

    def use_random(self, client_random: str) -> bool:
        """Record a clientRandom; False if it was used before (a replayed signature)."""
        now = time.time()
        while self.used_randoms and (len(self.used_randoms) > self.max_randoms or next(iter(self.used_randoms.values())) < now - self.random_window_s):
            self.used_randoms.popitem(last=False)
        if client_random in self.used_randoms:
            return False
        self.used_randoms[client_random] = now
        return True

    # ------------------------------------------------------------------ numbers

    def next_sequence(self, hospital_id: str, day: str) -> str | None:
        """The next ``Wnnn`` of this institution today; None when ``W999`` is used up."""
        n = self.seq_counters.get((hospital_id, day), 0) + 1
        if n > SEQ_MAX:
            return None
        self.seq_counters[(hospital_id, day)] = n
        return f"W{n:03d}"

    def next_treatment_number(self, hospital_id: str, day: str) -> str | None:
        n = self.tn_counters.get((hospital_id, day), 0) + 1
        if n >= 36**3:
            return None
        self.tn_counters[(hospital_id, day)] = n
        digits = "".join(B36[(n // 36**i) % 36] for i in (2, 1, 0))
        return f"{hospital_id:<10.10}{day}{digits}"

    def today(self) -> str:
        return roc_date(self.now())

    # ------------------------------------------------------------------ write accounting

    def count_write(self, route: str, key: str | None, content: str | None = None) -> None:
        self.writes[route] = self.writes.get(route, 0) + 1
        if key:
            self.writes_by_key[key] = self.writes_by_key.get(key, 0) + 1
        if content:
            self.writes_by_content[content] = self.writes_by_content.get(content, 0) + 1

    # ------------------------------------------------------------------ faults

    def add_fault(self, rule: Fault) -> None:
        self.faults.append(FaultState(rule, rule.times, random.Random(rule.seed)))

    def take_fault(self, route: str) -> Fault | None:
        """The first rule that matches ``route`` and fires for this call (spending one of its ``times``)."""
        for st in list(self.faults):
            r = st.rule
            if r.route is not None and r.route.lower() != route.lower():
                continue
            if st.remaining is not None:
                st.remaining -= 1
                if st.remaining <= 0:
                    self.faults.remove(st)
                return r
            if r.error_rate >= 1.0 or st.rng.random() < r.error_rate:
                return r
        return None
