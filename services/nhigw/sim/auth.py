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
from nhigw.sim.checks import note, refuse
from nhigw.sim.store import SimStore

_WITH_HC = (SignatureKind.HC, SignatureKind.HPCHC)
_WITH_HPC = (SignatureKind.HPC, SignatureKind.HPCHC)
CONTRACT_CODES = {"over": Code.SAM_CONTRACT_OVER, "suspended": Code.SAM_SUSPENDED, "cancelled": Code.SAM_CANCELLED}


def check_signature(store: SimStore, sig: SignatureObject, route: Route) -> None:
    """Each check, in order, is noted for the developer console (``checks.note``): passed, or the
    first that failed with its code and reason."""
    if sig.serviceType is not None and sig.serviceType != route.serviceType:
        raise refuse("serviceType", StatusError(Code.SIGNATURE_INVALID, f"serviceType {sig.serviceType} does not fit {route.path} (needs {route.serviceType})"))
    note("serviceType", True, route.serviceType)
    entry = store.sam_keys.get(sig.samId)
    if entry is None or entry[0] != sig.hospitalId:
        raise refuse("sam", StatusError(Code.SIGNATURE_INVALID, "unknown SAM for this institution"))
    note("sam", True, f"{sig.samId} @ {sig.hospitalId}")
    inst = store.institutions.get(sig.hospitalId)
    if inst and inst.contract != "active":
        raise refuse("contract", StatusError(CONTRACT_CODES[inst.contract]))
    note("contract", True)
    if all(k in _WITH_HC for k in route.accepts) and not (sig.hcId and sig.hcIdNo):
        raise refuse("cardIds", StatusError(Code.MISSING_KEY, "hcId and hcIdNo are required for this route"))
    if all(k in _WITH_HPC for k in route.accepts) and not (sig.hpcId and sig.hpcIdNo):
        raise refuse("cardIds", StatusError(Code.MISSING_KEY, "hpcId and hpcIdNo are required for this route"))
    note("cardIds", True, "/".join(k.value for k in route.accepts))
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
        raise refuse("signature", StatusError(Code.SIGNATURE_INVALID, f"the signature does not verify with SAM {sig.samId}'s key over serviceType {route.serviceType} and the card ids sent"))
    note("signature", True)
    if not store.use_random(sig.clientRandom):
        raise refuse("clientRandom", StatusError(Code.SIGNATURE_REUSED, "this clientRandom was used before: a signature is good for one call"))
    note("clientRandom", True)
