"""The agent's local CA (nhigw.common.tls): made per install, key sealed, server certificate renewed, old installs migrated."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import ssl
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nhigw.common.secretbox import MAGIC
from nhigw.common.tls import SERVER_DAYS, CertKeeper, LocalCA
from tests.helpers import Proc, free_port

NOW = dt.datetime.now(dt.UTC)


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())  # the first certificate of tls.crt: the server's


def self_signed(data_dir: Path) -> None:
    """What installs before the local CA had: a self-signed localhost certificate, its key in clear."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False).sign(key, hashes.SHA256())
    )
    (data_dir / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (data_dir / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def test_first_start_makes_a_ca_and_a_server_certificate_signed_by_it(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "agent", "ws-07")
    assert ca.ensure() is True
    root, cert = x509.load_pem_x509_certificate(ca.ca_path.read_bytes()), leaf(ca.cert_path)
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "nhigw local CA ws-07"
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    cert.verify_directly_issued_by(root)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(sans.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    # Nothing private in clear: the CA key sealed, the server key encrypted (its password sealed).
    assert ca.ca_key_path.read_bytes().startswith(MAGIC)
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in ca.key_path.read_bytes()
    assert not any(b"BEGIN PRIVATE KEY" in p.read_bytes() for p in ca.data_dir.iterdir())
    assert ca.ensure() is False  # a second start keeps both
    # Another install (another data directory) has its own CA.
    other = LocalCA(tmp_path / "other", "ws-07")
    other.ensure()
    assert other.ca_path.read_bytes() != ca.ca_path.read_bytes()


def test_server_certificate_renewed_at_two_thirds_of_its_life_with_the_clock_moved(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path, "ws-01")
    ca.ensure(NOW)
    first, root = leaf(ca.cert_path), ca.ca_path.read_bytes()
    assert ca.ensure(NOW + dt.timedelta(days=SERVER_DAYS * 0.6)) is False
    assert leaf(ca.cert_path).serial_number == first.serial_number
    later = NOW + dt.timedelta(days=SERVER_DAYS * 0.7)
    assert ca.ensure(later) is True
    renewed = leaf(ca.cert_path)
    assert renewed.serial_number != first.serial_number and renewed.not_valid_after_utc > first.not_valid_after_utc
    assert ca.ca_path.read_bytes() == root  # the CA stays: browsers that trust it trust the new certificate
    renewed.verify_directly_issued_by(x509.load_pem_x509_certificate(root))


def test_certificate_not_yet_valid_after_the_clock_went_back_is_replaced(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path, "ws-01")
    ca.ensure(NOW)
    first = leaf(ca.cert_path)
    back = NOW - dt.timedelta(days=3)  # the machine's clock stepped back: the certificate starts in its future
    assert ca.ensure(back) is True
    again = leaf(ca.cert_path)
    assert again.serial_number != first.serial_number and again.not_valid_before_utc <= back < again.not_valid_after_utc
    assert ca.ensure(back) is False


def test_self_signed_certificate_of_an_older_install_is_replaced(tmp_path: Path) -> None:
    self_signed(tmp_path)
    old = leaf(tmp_path / "tls.crt")
    ca = LocalCA(tmp_path, "ws-01")
    assert ca.ensure() is True
    new = leaf(ca.cert_path)
    assert new.serial_number != old.serial_number
    new.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.ca_path.read_bytes()))
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in ca.key_path.read_bytes()  # the clear key is gone with it


async def test_running_server_serves_the_renewed_certificate_to_new_connections(tmp_path: Path) -> None:
    keeper = CertKeeper(tmp_path, "ws-01")
    first = leaf(keeper.ca.cert_path)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=keeper.context)
    port = server.sockets[0].getsockname()[1]

    async def served_serial() -> int:
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE  # the renewed one starts in the moved clock's future
        _, w = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="localhost")
        der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        w.close()
        return x509.load_der_x509_certificate(der).serial_number

    try:
        assert await served_serial() == first.serial_number
        assert keeper.check(NOW + dt.timedelta(days=SERVER_DAYS * 0.5)) is False
        assert keeper.check(NOW + dt.timedelta(days=SERVER_DAYS * 0.7)) is True
        assert await served_serial() == leaf(keeper.ca.cert_path).serial_number != first.serial_number
    finally:
        server.close()
        await server.wait_closed()


def test_agent_process_renews_a_due_certificate_at_start_and_is_verified_through_its_ca(tmp_path: Path) -> None:
    ddir = tmp_path / "agent"
    LocalCA(ddir, "ws-01").ensure(NOW - dt.timedelta(days=SERVER_DAYS * 0.7))  # issued "70% of a life ago": due
    aged, root = leaf(ddir / "tls.crt"), (ddir / "ca.crt").read_bytes()
    port = free_port()
    agent = Proc("agent", ["agent", "--virtual", "--data-dir", str(tmp_path), "--workstation", "ws-01", "--port", str(port)], tmp_path).wait_ready()
    try:
        strict = ssl.create_default_context(cafile=str(ddir / "ca.crt"))  # trusts the CA only, checks the host name
        with urllib.request.urlopen(f"https://localhost:{port}/api/common/v1/Status", context=strict, timeout=10) as r:
            assert "statusCode" in json.loads(r.read())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, strict.wrap_socket(raw, server_hostname="localhost") as tls:
            served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        assert served.serial_number == leaf(ddir / "tls.crt").serial_number != aged.serial_number
        assert (ddir / "ca.crt").read_bytes() == root
    finally:
        assert agent.stop() == 0
