"""Mobile HCA login (seed: 驗證醫事人員行動憑證) with certificates made here: valid, expired, untrusted,
revoked (list and CRL), bad signature, clock skew; then HPC signatures the cloud accepts."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from tests.agent_stack import HC, SAM, agent_stack

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=365)).not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, rsa_key: bool = False, days: tuple[int, int] = (-1, 365)) -> tuple[x509.Certificate, object]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("測試醫師 HCA")).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW + dt.timedelta(days=days[0])).not_valid_after(NOW + dt.timedelta(days=days[1]))
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def login(cert: x509.Certificate, key: object, *, id_no: str = "C123456789", at: dt.datetime | None = None, swap: bool = False, tamper: bool = False) -> dict[str, str]:
    when = (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")  # signed at call time: the agent allows 5 min skew
    msg = f"{cert.serial_number}|{id_no}|{when}".encode()
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        sig = key.sign(msg, ec.ECDSA(hashes.SHA256()))
    if tamper:
        msg2 = f"{cert.serial_number}|A123456789|{when}".encode()
        sig = key.sign(msg2, ec.ECDSA(hashes.SHA256())) if isinstance(key, ec.EllipticCurvePrivateKey) else sig
    cert_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    sig_b64 = base64.b64encode(sig).decode()
    body = {"idNo": id_no, "birthday": "1970-05-28", "cName": "測試醫師", "eName": "TEST DOCTOR", "hospitalId": "3501200000", "medId": "F", "loginDateTime": when}
    # The seed's example carries the two fields the other way round: the agent takes either.
    body.update({"signatureCertificate": sig_b64, "signature": cert_b64} if swap else {"signatureCertificate": cert_b64, "signature": sig_b64})
    return body


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    ca, ca_key = make_ca("NHIGW Test HCA CA")
    other_ca, other_key = make_ca("Somebody Else CA")
    good = make_leaf(ca, ca_key)
    good_rsa = make_leaf(ca, ca_key, rsa_key=True)
    revoked_listed = make_leaf(ca, ca_key)
    revoked_crl = make_leaf(ca, ca_key)
    expired = make_leaf(ca, ca_key, days=(-400, -10))
    untrusted = make_leaf(other_ca, other_key)
    crl = (
        x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(NOW - dt.timedelta(days=1)).next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(revoked_crl[0].serial_number).revocation_date(NOW - dt.timedelta(hours=1)).build())
        .sign(ca_key, hashes.SHA256())
    )
    # A CRL signed by an untrusted CA naming the good certificate must be ignored.
    fake_crl = (
        x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(NOW - dt.timedelta(days=1)).next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(good[0].serial_number).revocation_date(NOW).build())
        .sign(other_key, hashes.SHA256())
    )
    data = tmp_path_factory.mktemp("agent-data")
    hca = data / "hca"
    (hca / "trusted").mkdir(parents=True)
    (hca / "crl").mkdir()
    (hca / "trusted" / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (hca / "trusted" / "junk.txt").write_text("not a certificate")
    (hca / "crl" / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    (hca / "crl" / "fake.pem").write_bytes(fake_crl.public_bytes(serialization.Encoding.PEM))
    (hca / "revoked.txt").write_text(f"# revoked serials\n{hex(revoked_listed[0].serial_number)}\n")
    return {"data": data, "good": good, "good_rsa": good_rsa, "revoked_listed": revoked_listed, "revoked_crl": revoked_crl, "expired": expired, "untrusted": untrusted}


async def test_mobile_hca_refusals_each_with_its_code(pki: dict, tmp_path: Path) -> None:
    async with agent_stack([SAM, HC], data_dir=pki["data"]) as s:
        await s.ready()
        cases = {
            "expired": (login(*pki["expired"]), 1422),
            "untrusted": (login(*pki["untrusted"]), 1423),
            "revoked (list)": (login(*pki["revoked_listed"]), 1424),
            "revoked (CRL)": (login(*pki["revoked_crl"]), 1424),
            "bad signature": (login(*pki["good"], tamper=True), 1420),
            "other idNo": ({**login(*pki["good"]), "idNo": "A123456789"}, 1420),
            "clock skew (past)": (login(*pki["good"], at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)), 1421),
            "clock skew (future)": (login(*pki["good"], at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)), 1421),
            "time format": ({**login(*pki["good"]), "loginDateTime": "2024/05/28 08:44:41"}, 1704),
            "not a certificate": ({**login(*pki["good"]), "signatureCertificate": "AAAA", "signature": "AAAA"}, 1704),
        }
        got = {name: (await s.a("POST", "/api/hpc/v1/Verification/MobileHca", body))[1]["statusCode"] for name, (body, _c) in cases.items()}
        assert got == {name: c for name, (_b, c) in cases.items()}
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hpc"]["status"] == 0


@pytest.mark.parametrize("which", ["good", "good_rsa"])
async def test_mobile_hca_login_gives_hpc_state_3_and_signatures_the_cloud_accepts(pki: dict, which: str) -> None:
    async with agent_stack([SAM, HC], data_dir=pki["data"]) as s:  # no physical HPC
        await s.ready()
        cert, key = pki[which]
        assert await s.code("POST", "/api/hpc/v1/Verification/MobileHca", login(cert, key, swap=which == "good")) == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hpc"]["status"] == 3
        _, basic = await s.a("GET", "/api/hpc/v1/Basic")
        assert basic == {"cardId": str(cert.serial_number), "idNo": "C123456789", "cName": "測試醫師", "eName": "TEST DOCTOR", "mobile": True, "statusCode": 0}
        # A mobile HCA has no card PIN.
        assert await s.code("POST", "/api/hpc/v1/Pin", {"newPin": "11223344"}) == 1403
        status, sig = await s.a("POST", "/api/hc/v1/Signature/HpcHc", {"serviceType": "01"})
        assert status == 200 and sig["hpcId"] == str(cert.serial_number) and sig["hpcIdNo"] == "C123456789" and sig["hcId"] == "000073898381"
        status, body = await s.sim("/api/v1/BasicData/Query", sig)
        assert status == 200 and body["idCardNum"] == "Z299999929"  # the SAM's signature over the HCA's ids verifies
        status, sig2 = await s.a("POST", "/api/hpc/v1/Signature", {"serviceType": "01"})
        assert status == 200 and sig2["hpcIdNo"] == "C123456789"
        assert await s.code("DELETE", "/api/hpc/v1/Logout") == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["hpc"]["status"] == 0
        assert await s.code("POST", "/api/hpc/v1/Signature", {"serviceType": "01"}) == 1402
