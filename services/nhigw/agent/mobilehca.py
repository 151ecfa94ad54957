"""Mobile HCA login (醫事人員行動憑證): the public format of the seed, checked on the agent.

The phone signs ``{certificate serial, decimal}|{idNo}|{loginDateTime}`` (``loginDateTime`` as
``yyyy-MM-ddTHH:mm:ssZ``, "固定帶入T與Z") with its private key and sends the signature and its
certificate (``MobileHcaRequest``). Checks, in order, each with its 6.0 code:

1. the certificate and signature decode (1704 otherwise);
2. the certificate is issued by a trusted CA (1423): one of the PEM/DER certificates in
   ``<data dir>/hca/trusted/`` (its signature verified, issuer name matched);
3. it is within its validity period now (1422);
4. it is not revoked (1424): its serial is in ``<data dir>/hca/revoked.txt`` (one serial a
   line, decimal or ``0x`` hex) or in a CRL in ``<data dir>/hca/crl/`` signed by a trusted CA;
5. ``loginDateTime`` parses and is within ``skew_s`` (default 300 s) of the agent's clock
   (1421 otherwise: a stale or future login);
6. the signature verifies with the certificate's key over the string above (1420).
   RSA (PKCS#1 v1.5, SHA-256) and EC (ECDSA, SHA-256) keys are accepted.

The seed's example carries ``signature`` and ``signatureCertificate`` the other way round
(``"signature": "MIIE4z..."`` is a certificate); the agent takes whichever parses as a
certificate. The files are read on each login, so an operator drops a CA or a CRL in place
without a restart.

Choice (the seed is silent): a verified mobile HCA puts the HCA column in state 3 without a
physical HPC. HPC and three-card signatures are then made by the SAM, with ``hpcId`` = the
certificate serial (decimal) and ``hpcIdNo`` = the verified ``idNo``: the phone's key signs
the login only, not each request.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes, CertificatePublicKeyTypes

from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import MobileHcaRequest


@dataclass(frozen=True)
class HcaLogin:
    serial: int
    idNo: str
    cName: str
    eName: str
    notAfter: dt.datetime

    @property
    def card_id(self) -> str:
        return str(self.serial)


def login_message(serial: int, id_no: str, login_date_time: str) -> bytes:
    return f"{serial}|{id_no}|{login_date_time}".encode("ascii")


_ISSUER_KEY_TYPES = get_args(CertificateIssuerPublicKeyTypes)


def _signs(key: CertificatePublicKeyTypes) -> TypeGuard[CertificateIssuerPublicKeyTypes]:
    """Can a key of this kind have signed a CRL? (X25519 / X448 / ML-KEM keys only agree or wrap keys.)"""
    return isinstance(key, _ISSUER_KEY_TYPES)


def _load_cert(data: bytes) -> x509.Certificate:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _b64_or_pem(text: str) -> bytes:
    t = text.strip()
    if t.startswith("-----BEGIN"):
        return t.encode("ascii")
    return base64.b64decode(t, validate=False)


def decode_request(req: MobileHcaRequest) -> tuple[x509.Certificate, bytes]:
    """(certificate, signature bytes), whichever way round the two fields came. 1704 if neither is a certificate."""
    a, b = req.signatureCertificate, req.signature
    for cert_text, sig_text in ((a, b), (b, a)):
        try:
            cert = _load_cert(_b64_or_pem(cert_text))
            sig = base64.b64decode(sig_text.strip(), validate=False)
        except (ValueError, TypeError):
            continue
        return cert, sig
    raise StatusError(Code.PARAM_FORMAT, "signatureCertificate is not a certificate (base64 DER or PEM)")


def parse_login_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise StatusError(Code.PARAM_FORMAT, "loginDateTime must be yyyy-MM-ddTHH:mm:ssZ") from None


def _parse_serial(line: str) -> int | None:
    s = line.split("#", 1)[0].strip()
    if not s:
        return None
    try:
        return int(s, 16) if s.lower().startswith("0x") else int(s)
    except ValueError:
        return None


@dataclass
class MobileHcaVerifier:
    trusted: list[x509.Certificate] = field(default_factory=list)
    revoked: set[int] = field(default_factory=set)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    skew_s: float = 300.0
    clock: Callable[[], float] = time.time

    @classmethod
    def from_dir(cls, path: Path | None, **kw: Any) -> "MobileHcaVerifier":
        """``path/trusted/*``, ``path/crl/*``, ``path/revoked.txt``; unreadable files are skipped."""
        v = cls(**kw)
        if path is None:
            return v
        for f in sorted((path / "trusted").glob("*")) if (path / "trusted").is_dir() else []:
            try:
                v.trusted.append(_load_cert(f.read_bytes()))
            except (ValueError, OSError):
                continue
        for f in sorted((path / "crl").glob("*")) if (path / "crl").is_dir() else []:
            try:
                data = f.read_bytes()
                v.crls.append(x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data))
            except (ValueError, OSError):
                continue
        rl = path / "revoked.txt"
        if rl.exists():
            v.revoked |= {n for n in map(_parse_serial, rl.read_text(encoding="utf-8").splitlines()) if n is not None}
        return v

    def _issuer(self, cert: x509.Certificate) -> x509.Certificate:
        for ca in self.trusted:
            if ca.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        raise StatusError(Code.HCA_CERT_UNTRUSTED, "the certificate is not issued by a trusted CA")

    def _is_revoked(self, cert: x509.Certificate) -> bool:
        if cert.serial_number in self.revoked:
            return True
        for crl in self.crls:
            if crl.issuer != cert.issuer:
                continue
            if not any(ca.subject == crl.issuer and _signs(key := ca.public_key()) and crl.is_signature_valid(key) for ca in self.trusted):
                continue  # a CRL nobody trusted signed says nothing
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return True
        return False

    def verify(self, req: MobileHcaRequest) -> HcaLogin:
        cert, sig = decode_request(req)
        self._issuer(cert)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise StatusError(Code.HCA_CERT_VALIDITY, "the certificate is not within its validity period")
        if self._is_revoked(cert):
            raise StatusError(Code.HCA_CERT_REVOKED, "the certificate is revoked")
        login_at = parse_login_time(req.loginDateTime)
        if abs((now - login_at).total_seconds()) > self.skew_s:
            raise StatusError(Code.HCA_TIMEOUT, f"loginDateTime is more than {int(self.skew_s)} s from the agent's clock")
        msg = login_message(cert.serial_number, req.idNo, req.loginDateTime)
        key = cert.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(sig, msg, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
            else:
                raise StatusError(Code.HCA_SIGNATURE, "unsupported certificate key type")
        except InvalidSignature:
            raise StatusError(Code.HCA_SIGNATURE, "the login signature does not verify") from None
        return HcaLogin(cert.serial_number, req.idNo, req.cName or "", req.eName or "", cert.not_valid_after_utc)
