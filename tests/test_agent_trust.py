"""``nhigw agent trust [--uninstall]`` on Linux: a test-owned NSS database and a test-owned system store (real certutil, update-ca-certificates)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509

from nhigw.agent.trust import DebianSystemStore, NssDb, default_stores
from tests.helpers import ROOT


def nhigw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nhigw", *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)


def nss_list(db: Path) -> str:
    return subprocess.run(["certutil", "-L", "-d", f"sql:{db}"], capture_output=True, text=True, check=True).stdout


def machine_store() -> list[str]:
    return sorted(p.name for p in Path("/etc/ssl/certs").iterdir() if "nhigw" in p.name) + sorted(p.name for p in Path("/usr/local/share/ca-certificates").glob("*nhigw*"))


def test_trust_then_uninstall_in_an_nss_database_and_a_system_store(tmp_path: Path) -> None:
    before = machine_store()
    nss, root, data = tmp_path / "home" / ".pki" / "nssdb", tmp_path / "sysroot", tmp_path / "data"
    # A system store as on a real machine: one other CA already there.
    other = root / "usr/share/ca-certificates/other/other.crt"
    other.parent.mkdir(parents=True)
    other_ca = tmp_path / "o"
    from nhigw.common.tls import LocalCA

    LocalCA(other_ca, "elsewhere").ensure()
    other.write_bytes((other_ca / "ca.crt").read_bytes())
    (root / "etc").mkdir(parents=True)
    (root / "etc/ca-certificates.conf").write_text("other/other.crt\n")
    common = ["--data-dir", str(data), "--nssdb", str(nss), "--system-root", str(root)]

    r = nhigw("agent", "trust", "--workstation", "ws-05", *common)
    assert r.returncode == 0, r.stderr
    assert f"NSS database {nss}: added 'nhigw local CA ws-05' (database created)" in r.stdout
    assert "system store" in r.stdout and "added nhigw-local-ca-ws-05.crt" in r.stdout
    listing = [line.split() for line in nss_list(nss).splitlines()]
    assert ["nhigw", "local", "CA", "ws-05", "C,,"] in listing  # trusted to issue TLS server certificates
    ca_pem = (data / "agent" / "ca.crt").read_text().strip()
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    assert ca_pem in bundle.read_text() and (root / "etc/ssl/certs/nhigw-local-ca-ws-05.pem").is_symlink()
    # The server certificate made with the CA verifies against what the system store now holds.
    server = x509.load_pem_x509_certificate((data / "agent" / "tls.crt").read_bytes())
    trusted = x509.load_pem_x509_certificates(bundle.read_bytes())
    assert any(server.issuer == c.subject for c in trusted)

    assert nhigw("agent", "trust", *common).returncode == 0  # again: still one entry
    assert sum(1 for line in nss_list(nss).splitlines() if line.startswith("nhigw local CA ws-05")) == 1

    r = nhigw("agent", "trust", "--uninstall", *common)
    assert r.returncode == 0, r.stderr
    assert "removed 'nhigw local CA ws-05'" in r.stdout and "removed nhigw-local-ca-ws-05.crt" in r.stdout
    assert "nhigw" not in nss_list(nss)
    assert ca_pem not in bundle.read_text() and (other_ca / "ca.crt").read_text().strip() in bundle.read_text()
    assert not any("nhigw" in p.name for p in (root / "etc/ssl/certs").iterdir())
    r = nhigw("agent", "trust", "--uninstall", *common)  # nothing left to remove: said so, not an error
    assert r.returncode == 0 and "was not there" in r.stdout
    assert machine_store() == before  # the machine's own store was never touched


def test_uninstall_without_a_ca_is_a_clear_error(tmp_path: Path) -> None:
    r = nhigw("agent", "trust", "--uninstall", "--data-dir", str(tmp_path), "--nssdb", str(tmp_path / "nss"))
    assert r.returncode == 1 and "no CA at" in r.stderr and "Traceback" not in r.stderr


def test_linux_stores_are_chromiums_and_each_firefox_profiles_and_the_system_one_only_as_root(tmp_path: Path) -> None:
    profile = tmp_path / ".mozilla" / "firefox" / "abcd.default-release"
    profile.mkdir(parents=True)
    (profile / "cert9.db").touch()
    # Ubuntu's snaps keep their own: Chromium's under the current revision, Firefox's profiles under common/.
    snap_chromium = tmp_path / "snap" / "chromium" / "current" / ".pki" / "nssdb"
    snap_firefox = tmp_path / "snap" / "firefox" / "common" / ".mozilla" / "firefox" / "wxyz.default"
    for d in (snap_chromium, snap_firefox):
        d.mkdir(parents=True)
        (d / "cert9.db").touch()
    stores, notes = default_stores("linux", tmp_path, is_root=False)
    assert [s.dir for s in stores if isinstance(s, NssDb)] == [tmp_path / ".pki" / "nssdb", snap_chromium, profile, snap_firefox]
    assert not any(isinstance(s, DebianSystemStore) for s in stores) and "run as root" in notes[0]
    stores, notes = default_stores("linux", tmp_path, is_root=True)
    assert isinstance(stores[-1], DebianSystemStore) and stores[-1].root == Path("/") and notes == []
