"""Self-signed TLS for the loopback HTTPS services (agent 5066, compat 5067).

Generated on first start and kept in the service's data directory, as the 6.0 software
ships its own ``cshis6.pfx``. The private key (``tls.key``, 0600) is sealed like the other
keys: an encrypted PKCS#8 PEM whose password comes from ``nhigw.common.secretbox``
(bound to this machine and user, or ``NHIGW_MASTER_KEY``), so a copy of the data directory
does not give the key away. A key left in clear by an older version is sealed on the next
start. HIS clients either trust the certificate file or, as real HIS code does, skip
verification for localhost.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nhigw.common.secretbox import SecretBox, private_dir

PURPOSE = "nhigw-tls-key"


def _write_key(path: Path, pem: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)


def ensure_cert(data_dir: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    data_dir = private_dir(Path(data_dir))
    cert_path, key_path = data_dir / "tls.crt", data_dir / "tls.key"
    sealed = serialization.BestAvailableEncryption(SecretBox(data_dir, PURPOSE).password())
    if cert_path.exists() and key_path.exists():
        pem = key_path.read_bytes()
        if b"ENCRYPTED" not in pem:  # left in clear by an older version: seal it now
            old = serialization.load_pem_private_key(pem, password=None)
            _write_key(key_path, old.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, sealed))
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, sealed))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_context(data_dir: Path) -> ssl.SSLContext:
    cert, key = ensure_cert(data_dir)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key, password=SecretBox(Path(data_dir), PURPOSE).password())
    return ctx
