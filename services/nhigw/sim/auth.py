"""Signature check of every business call and of the signed test-card API.

The body must carry the signature object; the SAM must be registered and its
institution in contract (1302/1303/1304 otherwise); the signature must verify for the
route's ``serviceType`` (3100 otherwise, also when the body names another
``serviceType``); a route takes any of the signatures in ``route.accepts``: the fields
every one of them has are required (``hcId`` and ``hcIdNo`` for HC routes, ``hpcId`` and
``hpcIdNo`` for HPC-only ones; 3300), so ``Treatment/WriteCodeFee`` takes the HC signature
and the three-card one; a ``clientRandom`` is accepted once (3245 on reuse).
"""

from __future__ import annotations

from nhigw.contracts import signing
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import SignatureKind, SignatureObject
from nhigw.contracts.routes import Route
from nhigw.sim.store import SimStore

_WITH_HC = (SignatureKind.HC, SignatureKind.HPCHC)
_WITH_HPC = (SignatureKind.HPC, SignatureKind.HPCHC)
CONTRACT_CODES = {"over": Code.SAM_CONTRACT_OVER, "suspended": Code.SAM_SUSPENDED, "cancelled": Code.SAM_CANCELLED}


def check_signature(store: SimStore, sig: SignatureObject, route: Route) -> None:
    if sig.serviceType is not None and sig.serviceType != route.serviceType:
        raise StatusError(Code.SIGNATURE_INVALID, f"serviceType {sig.serviceType} does not fit {route.path} (needs {route.serviceType})")
    entry = store.sam_keys.get(sig.samId)
    if entry is None or entry[0] != sig.hospitalId:
        raise StatusError(Code.SIGNATURE_INVALID, "unknown SAM for this institution")
    inst = store.institutions.get(sig.hospitalId)
    if inst and inst.contract != "active":
        raise StatusError(CONTRACT_CODES[inst.contract])
    if all(k in _WITH_HC for k in route.accepts) and not (sig.hcId and sig.hcIdNo):
        raise StatusError(Code.MISSING_KEY, "hcId and hcIdNo are required for this route")
    if all(k in _WITH_HPC for k in route.accepts) and not (sig.hpcId and sig.hpcIdNo):
        raise StatusError(Code.MISSING_KEY, "hpcId and hpcIdNo are required for this route")
    try:
        msg = signing.canonical_message(
            serviceType=route.serviceType,
            clientRandom=sig.clientRandom,
            samId=sig.samId,
            hospitalId=sig.hospitalId,
            hcId=sig.hcId,
            hcIdNo=sig.hcIdNo,
            hpcId=sig.hpcId,
            hpcIdNo=sig.hpcIdNo,
        )
        ok = signing.verify(entry[1], msg, sig.signature)
    except (UnicodeEncodeError, ValueError):  # fields that cannot be in a signed message
        ok = False
    if not ok:
        raise StatusError(Code.SIGNATURE_INVALID)
    if not store.use_random(sig.clientRandom):
        raise StatusError(Code.SIGNATURE_REUSED)
