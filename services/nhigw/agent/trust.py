"""``nhigw agent trust [--uninstall]``: make this workstation's browsers trust the agent's local CA.

The CA (``<data dir>/agent/ca.crt``, :mod:`nhigw.common.tls`) is put where the machine's
browsers look, one seam (:class:`Store`) per place:

- Linux: the NSS databases Chromium (``$HOME/.pki/nssdb``; the snap's
  ``~/snap/chromium/current/.pki/nssdb``) and Firefox (each profile under ``$HOME/.mozilla/firefox``
  or the snap's ``~/snap/firefox/common/.mozilla/firefox``) read, with ``certutil`` from
  libnss3-tools; and, as root, the
  system store (``/usr/local/share/ca-certificates`` + ``update-ca-certificates``), which
  curl, Python and other programs read.
- Windows: ``certutil -addstore Root`` (run as administrator).
- macOS: ``security add-trusted-cert`` into the System keychain (run with sudo).

Only the Linux stores are tested here; the Windows and macOS seams are the documented commands,
not run on those systems by this project's tests. Only the public certificate is read: the CA
key never leaves the agent's data directory. ``--uninstall`` removes what was added, by the CA's
name. What changed is printed, one line per store.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from nhigw.common.tls import LocalCA


class TrustError(Exception):
    pass


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError as exc:
        raise TrustError(f"{cmd[0]} not found ({'apt-get install libnss3-tools' if cmd[0] == 'certutil' else 'install it'})") from exc


def _checked(cmd: list[str]) -> str:
    r = _run(cmd)
    if r.returncode != 0:
        raise TrustError(f"{' '.join(cmd[:3])}… failed: {(r.stderr or r.stdout).strip()[:300]}")
    return r.stdout


@dataclass
class Ca:
    path: Path
    name: str  # the CA's common name: the NSS nickname and what --uninstall looks for

    @property
    def file_stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-").lower()


class Store:
    label = ""

    def install(self, ca: Ca) -> str:
        raise NotImplementedError

    def uninstall(self, ca: Ca) -> str:
        raise NotImplementedError


class NssDb(Store):
    """One NSS database (``cert9.db``): the CA as a trusted TLS issuer (``-t C,,``)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.label = f"NSS database {self.dir}"

    def _db(self) -> str:
        return f"sql:{self.dir}"

    def nicknames(self) -> list[str]:
        out = _checked(["certutil", "-L", "-d", self._db()])
        names = []
        for line in out.splitlines()[4:]:  # a header of four lines, then "name   trust"
            m = re.match(r"^(.*?)\s{2,}\S*,\S*,\S*\s*$", line)
            if m:
                names.append(m.group(1))
        return names

    def install(self, ca: Ca) -> str:
        created = not (self.dir / "cert9.db").exists()
        if created:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            _checked(["certutil", "-N", "-d", self._db(), "--empty-password"])
        if ca.name in self.nicknames():
            _checked(["certutil", "-D", "-d", self._db(), "-n", ca.name])  # an older CA of the same name
        _checked(["certutil", "-A", "-d", self._db(), "-n", ca.name, "-t", "C,,", "-i", str(ca.path)])
        return f"{self.label}: added '{ca.name}'" + (" (database created)" if created else "")

    def uninstall(self, ca: Ca) -> str:
        if not (self.dir / "cert9.db").exists():
            return f"{self.label}: no database, nothing to remove"
        removed = 0
        while ca.name in self.nicknames():
            _checked(["certutil", "-D", "-d", self._db(), "-n", ca.name])
            removed += 1
        return f"{self.label}: removed '{ca.name}'" if removed else f"{self.label}: '{ca.name}' was not there"


class DebianSystemStore(Store):
    """``/usr/local/share/ca-certificates`` + ``update-ca-certificates``; ``root`` other than ``/`` for tests."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = Path(root)
        self.local = self.root / "usr/local/share/ca-certificates"
        self.label = f"system store {self.local}"

    def _update(self, *extra: str) -> None:
        cmd = ["update-ca-certificates", *extra]
        if self.root != Path("/"):
            r = self.root
            for d in ("etc/ssl/certs", "usr/share/ca-certificates", "etc/ca-certificates/update.d"):
                (r / d).mkdir(parents=True, exist_ok=True)
            (r / "etc/ca-certificates.conf").touch()
            cmd += ["--certsconf", str(r / "etc/ca-certificates.conf"), "--certsdir", str(r / "usr/share/ca-certificates"),
                    "--localcertsdir", str(self.local), "--etccertsdir", str(r / "etc/ssl/certs"), "--hooksdir", str(r / "etc/ca-certificates/update.d")]
        _checked(cmd)

    def install(self, ca: Ca) -> str:
        self.local.mkdir(parents=True, exist_ok=True)
        dest = self.local / f"{ca.file_stem}.crt"
        shutil.copyfile(ca.path, dest)
        dest.chmod(0o644)
        self._update()
        return f"{self.label}: added {dest.name} (update-ca-certificates)"

    def uninstall(self, ca: Ca) -> str:
        dest = self.local / f"{ca.file_stem}.crt"
        if not dest.exists():
            return f"{self.label}: {dest.name} was not there"
        dest.unlink()
        self._update("--fresh")  # --fresh: also drops the link to the removed file in /etc/ssl/certs
        bundle = self.root / "etc/ssl/certs/ca-certificates.crt"
        pem = ca.path.read_text().strip()
        if bundle.exists() and pem in (text := bundle.read_text()):  # not rebuilt when no other CA is left
            bundle.write_text(text.replace(pem + "\n", "").replace(pem, ""))
        return f"{self.label}: removed {dest.name} (update-ca-certificates --fresh)"


class WindowsRootStore(Store):
    """The machine's Trusted Root store (administrator). Not exercised by this project's tests."""

    label = "Windows Trusted Root store"

    def install(self, ca: Ca) -> str:
        _checked(["certutil", "-addstore", "-f", "Root", str(ca.path)])
        return f"{self.label}: added '{ca.name}'"

    def uninstall(self, ca: Ca) -> str:
        _checked(["certutil", "-delstore", "Root", ca.name])
        return f"{self.label}: removed '{ca.name}'"


class MacSystemKeychain(Store):
    """The System keychain, trusted as a root (sudo). Not exercised by this project's tests."""

    label = "macOS System keychain"
    keychain = "/Library/Keychains/System.keychain"

    def install(self, ca: Ca) -> str:
        _checked(["security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", self.keychain, str(ca.path)])
        return f"{self.label}: added '{ca.name}'"

    def uninstall(self, ca: Ca) -> str:
        _checked(["security", "remove-trusted-cert", "-d", str(ca.path)])
        _checked(["security", "delete-certificate", "-c", ca.name, self.keychain])
        return f"{self.label}: removed '{ca.name}'"


def default_stores(platform: str = sys.platform, home: Path | None = None, is_root: bool | None = None) -> tuple[list[Store], list[str]]:
    """The stores of this platform, and notes on those left out (e.g. the system store without root)."""
    home = home or Path.home()
    if platform == "win32":
        return [WindowsRootStore()], []
    if platform == "darwin":
        return [MacSystemKeychain()], []
    stores: list[Store] = [NssDb(home / ".pki" / "nssdb")]
    # Snap packages (Ubuntu's Chromium and Firefox) keep their NSS databases under ~/snap: those that exist.
    snap_chromium = home / "snap" / "chromium" / "current" / ".pki" / "nssdb"
    stores += [NssDb(snap_chromium)] if (snap_chromium / "cert9.db").exists() else []
    for firefox in (home / ".mozilla" / "firefox", home / "snap" / "firefox" / "common" / ".mozilla" / "firefox"):
        stores += [NssDb(p.parent) for p in sorted(firefox.glob("*/cert9.db"))]
    notes = []
    root = is_root if is_root is not None else (hasattr(os, "geteuid") and os.geteuid() == 0)
    if root:
        stores.append(DebianSystemStore())
    else:
        notes.append("system store: not changed (run as root for /usr/local/share/ca-certificates)")
    return stores, notes


def load_ca(data_dir: Path, workstation: str | None, *, create: bool) -> Ca:
    path = data_dir / "ca.crt"
    if not path.exists():
        if not create:
            raise TrustError(f"no CA at {path}: nothing of this agent to remove (wrong --data-dir?)")
        LocalCA(data_dir, workstation).ensure()  # as on the agent's first start (run as the agent's user)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return Ca(path, str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value))


def add_trust_parser(agent_parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    sub = agent_parser.add_subparsers(dest="agentcmd", required=False)
    sp = sub.add_parser("trust", help="make this machine's browsers trust the agent's local CA (--uninstall removes it)")
    common(sp)
    sp.add_argument("--workstation", help="workstation id, for a CA made now (default: host name)")
    sp.add_argument("--uninstall", action="store_true", help="remove the CA from the stores")
    sp.add_argument("--nssdb", action="append", metavar="DIR", help="only this NSS database (repeatable); no system store unless --system-root")
    sp.add_argument("--system-root", metavar="DIR", help="the Debian system store under DIR instead of / (tests, images being built)")


def cmd_trust(args: argparse.Namespace, data_dir: Path) -> int:
    try:
        ca = load_ca(data_dir, args.workstation, create=not args.uninstall)
        if args.nssdb or args.system_root:
            stores: list[Store] = [NssDb(Path(d)) for d in args.nssdb or []]
            if args.system_root:
                stores.append(DebianSystemStore(Path(args.system_root)))
            notes: list[str] = []
        else:
            stores, notes = default_stores()
        print(f"CA '{ca.name}' ({ca.path})")
        for s in stores:
            print(s.uninstall(ca) if args.uninstall else s.install(ca), flush=True)
        for n in notes:
            print(n)
    except TrustError as exc:
        print(f"nhigw agent trust: {exc}", file=sys.stderr)
        return 1
    if not args.uninstall:
        print("restart the browsers for them to see it")
    return 0
