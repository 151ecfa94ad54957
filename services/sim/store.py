"""The simulator's data: institutions and their SAM keys, patients, used client randoms."""

from __future__ import annotations

import base64
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from nhigw.vcard.identities import Identities


@dataclass
class Institution:
    hospitalId: str
    hospitalName: str = ""
    hospitalShortName: str = ""
    contract: str = "active"  # active | over | suspended | cancelled


@dataclass
class Patient:
    cardSn: str
    name: str
    idCardNum: str
    birthday: str
    sex: str
    dateIssue: str
    cancelTermination: str = "1"
    emergentTel: str = ""
    insurerCode: str = ""
    insurerId: str = ""
    cardValidity: str = "1201231"
    treatmentCounter: str = "06"
    newbornBirthday: str = ""
    newbornBaby: str = ""
    identityStatus: str = "3"


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

    @classmethod
    def seeded(cls, identities: Identities | None = None) -> "SimStore":
        ids = identities or Identities.load()
        store = cls()
        for sam in ids.sams.values():
            store.institutions.setdefault(sam.hospitalId, Institution(sam.hospitalId, sam.hospitalName, sam.hospitalShortName))
        for hc in ids.hcs.values():
            store.patients_by_id[hc.idNo] = Patient(cardSn=hc.cardNo, name=hc.name, idCardNum=hc.idNo, birthday=hc.birthday, sex=hc.sex, dateIssue=hc.dateIssue)
        return store

    def register_sam(self, sam_id: str, hospital_id: str, public_key_pem: str) -> None:
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
