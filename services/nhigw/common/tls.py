"""TLS for the loopback HTTPS services (agent 5066, compat 5067): a local CA per install.

On first start a service makes, in its data directory, its own certificate authority
(``ca.crt``, named for nhigw and the workstation; its key sealed with
:class:`~nhigw.common.secretbox.SecretBox` in ``ca.key.sealed``) and a server certificate
for ``localhost``, ``127.0.0.1`` and ``::1`` signed by it (``tls.crt``: the server
certificate then the CA; ``tls.key``: PKCS#8 encrypted with the ``SecretBox`` password, bound
to this machine and user like the other keys). Nothing private is shared between installs. Browsers trust the
agent once ``nhigw agent trust`` has put ``ca.crt`` where they look (:mod:`nhigw.common.trust`).

The server certificate lives :data:`SERVER_DAYS` days and is renewed at
:data:`RENEW_AT` of its life: checked at start and every :data:`CHECK_S` seconds while
running (:class:`CertKeeper`); new connections get the new certificate, no restart. One that
is not yet valid by the clock (stepped back since it was issued) is replaced too. A
certificate not signed by this data directory's CA (an install from before the CA, which
had a self-signed one) is replaced at start. The CA lives :data:`CA_DAYS` days; it is
made anew only when missing, unreadable (sealed on another machine or user) or past
:data:`RENEW_AT` of its life, and then ``nhigw agent trust`` must be run again.

One CA per workstation: compat (HTTPS 5067) keeps its own server certificate in its own data
directory but has it signed by the agent's CA (``ca_dir``), so the one ``nhigw agent trust``
makes browsers trust both; a compat certificate of another CA (its own, from before) is
replaced at start, and that CA's files are deleted. Making or renewing the CA holds a lock file in its directory (POSIX), so an
agent and a compat starting together on a new install make one CA, not two.

When each certificate ends (:meth:`LocalCA.expiry`, a ``TlsExpiry``) goes into the agent's
presence, its settings and the gateway's ``nhigw_agent_cert_expiry_seconds``. The clock is
injectable (``CertKeeper(clock=...)``, ``ensure(now)``) so renewal is tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nhigw.common.logging import get_logger
from nhigw.common.secretbox import SecretBox, SecretBoxError, private_dir
from nhigw.contracts.models import TlsExpiry

try:
    import fcntl

    HAVE_FCNTL = True
except ImportError:  # Windows: no advisory lock; the agent and compat run as one service there
    HAVE_FCNTL = False

log = get_logger("nhigw.tls")

CA_DAYS = 3650
SERVER_DAYS = 90
RENEW_AT = 2 / 3
CHECK_S = 3600.0
CA_PURPOSE = "nhigw-local-ca"
KEY_PURPOSE = "nhigw-tls-key"


Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or utc_now()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if not HAVE_FCNTL:
        yield
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _due(cert: x509.Certificate, now: dt.datetime) -> bool:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= start + (end - start) * RENEW_AT


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class LocalCA:
    """The server certificate files of one data directory, and the CA of ``ca_dir`` (default: the same directory)."""

    def __init__(self, data_dir: Path, workstation: str | None = None, *, ca_dir: Path | None = None) -> None:
        self.data_dir = private_dir(Path(data_dir))
        self.ca_dir = private_dir(Path(ca_dir)) if ca_dir is not None else self.data_dir
        self.workstation = workstation or socket.gethostname()
        self.ca_path = self.ca_dir / "ca.crt"
        self.ca_key_path = self.ca_dir / "ca.key.sealed"
        self.cert_path = self.data_dir / "tls.crt"
        self.key_path = self.data_dir / "tls.key"

    # ---------------------------------------------------------------- the CA

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        try:
            cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            key = serialization.load_pem_private_key(SecretBox(self.ca_dir, CA_PURPOSE).read(self.ca_key_path), None)
        except (OSError, ValueError, SecretBoxError):
            return None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            return None
        return cert, key

    def ensure_ca(self, now: dt.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        now = _now(now)
        loaded = self._load_ca()
        if loaded and not _due(loaded[0], now):
            return loaded
        with _locked(self.ca_dir / ".ca.lock"):
            loaded = self._load_ca()  # made meanwhile by the other service of this workstation
            if loaded and not _due(loaded[0], now):
                return loaded
            return self._make_ca(now)

    def _make_ca(self, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhigw"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"nhigw local CA {self.workstation}"[:64]),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        SecretBox(self.ca_dir, CA_PURPOSE).write(
            self.ca_key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        _write_public(self.ca_path, cert.public_bytes(serialization.Encoding.PEM))
        log.info("tls_ca_created", subject=cert.subject.rfc4514_string(), notAfter=cert.not_valid_after_utc.isoformat())
        return cert, key

    # ---------------------------------------------------------------- the server certificate

    def server_cert(self) -> x509.Certificate | None:
        try:
            return x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (OSError, ValueError):
            return None

    def _password(self) -> bytes:
        return SecretBox(self.data_dir, KEY_PURPOSE).password()

    def _server_ok(self, ca: x509.Certificate, now: dt.datetime) -> bool:
        cert, pw = self.server_cert(), self._password()
        # Not yet valid by this clock (it was stepped back, e.g. a reset CMOS clock): this machine's browsers refuse it too.
        if cert is None or _due(cert, now) or now < cert.not_valid_before_utc:
            return False
        try:
            cert.verify_directly_issued_by(ca)  # a self-signed one from before the CA, or another CA's: not ours
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), pw)
        except (OSError, ValueError, TypeError, InvalidSignature):
            return False
        return key.public_key() == cert.public_key()

    def ensure(self, now: dt.datetime | None = None) -> bool:
        """Make the CA and a server certificate if missing, foreign or due; True when the server certificate changed."""
        now = _now(now)
        ca, ca_key = self.ensure_ca(now)
        if self._server_ok(ca, now):
            return False
        old = self.server_cert()
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhigw"), x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pw = self._password()
        _write_private(self.key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(pw)))
        _write_public(self.cert_path, cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
        if self.ca_dir != self.data_dir:  # a CA of this directory's own, from before it used the agent's: no longer signs anything
            for own in (self.data_dir / "ca.crt", self.data_dir / "ca.key.sealed"):
                own.unlink(missing_ok=True)
        log.info(
            "tls_cert_issued",
            reason="renewal" if old is not None and old.issuer == ca.subject else ("migration" if old is not None else "first start"),
            notAfter=cert.not_valid_after_utc.isoformat(),
        )
        return True

    def load_into(self, ctx: ssl.SSLContext) -> None:
        pw = self._password()
        ctx.load_cert_chain(self.cert_path, self.key_path, password=pw)

    def expiry(self) -> TlsExpiry | None:
        """When the server certificate and the CA end, as the files say (None: not made yet, or unreadable)."""
        try:
            ca = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        except (OSError, ValueError):
            return None
        cert = self.server_cert()
        if cert is None:
            return None
        return TlsExpiry(serverNotAfter=cert.not_valid_after_utc.timestamp(), caNotAfter=ca.not_valid_after_utc.timestamp())


class CertKeeper:
    """A server SSL context whose certificate is kept renewed (at start, then every ``check_s`` seconds).

    ``clock`` (default the system's) decides when a certificate is due and dates the new one;
    ``expiry`` is what the context serves now.
    """

    def __init__(self, data_dir: Path, workstation: str | None = None, check_s: float = CHECK_S, *, ca_dir: Path | None = None, clock: Clock = utc_now) -> None:
        self.ca = LocalCA(data_dir, workstation, ca_dir=ca_dir)
        self.check_s = check_s
        self.clock = clock
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.ensure(clock())
        self.ca.load_into(self.context)
        self.expiry = self.ca.expiry()

    def check(self, now: dt.datetime | None = None) -> bool:
        """Renew if due; the context serves the new certificate to the next handshakes. True when renewed."""
        if not self.ca.ensure(now or self.clock()):
            return False
        self.ca.load_into(self.context)
        self.expiry = self.ca.expiry()
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            try:
                self.check()
            except Exception as exc:  # a full disk must not end the loop: the old certificate still serves
                log.warning("tls_renewal_failed", error=type(exc).__name__)


def server_context(data_dir: Path, workstation: str | None = None, *, ca_dir: Path | None = None) -> ssl.SSLContext:
    """A server context with this data directory's CA-signed certificate (renewed only at start; see :class:`CertKeeper`)."""
    return CertKeeper(data_dir, workstation, ca_dir=ca_dir).context
