"""The sealing seam: at-rest boxes bound to the platform's machine identity, never to a constant."""

from __future__ import annotations

from pathlib import Path

import pytest

from nhigw.common import secretbox
from nhigw.common.secretbox import NoMachineIdentity, SecretBox, SecretBoxError, machine_identity, parse_ioreg_uuid


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine-id file this test owns, read through the real POSIX seam."""
    monkeypatch.delenv("NHIGW_MASTER_KEY", raising=False)
    f = tmp_path / "machine-id"
    f.write_text("0123456789abcdef0123456789abcdef\n")
    monkeypatch.setattr(secretbox, "MACHINE_ID_FILES", (str(f), str(tmp_path / "dbus-machine-id")))
    return f


def test_sealed_under_one_identity_does_not_open_under_another(machine: Path, tmp_path: Path) -> None:
    data = tmp_path / "agent"
    SecretBox(data, "cloud-sam").write(tmp_path / "sam.sealed", b"private key material")
    assert SecretBox(data, "cloud-sam").read(tmp_path / "sam.sealed") == b"private key material"
    machine.write_text("fedcba9876543210fedcba9876543210\n")  # the data directory copied to another machine
    with pytest.raises(SecretBoxError, match="wrong machine"):
        SecretBox(data, "cloud-sam").read(tmp_path / "sam.sealed")


def test_dbus_machine_id_is_the_fallback(machine: Path, tmp_path: Path) -> None:
    machine.unlink()
    (tmp_path / "dbus-machine-id").write_text("aaaabbbbccccddddaaaabbbbccccdddd\n")
    assert machine_identity("linux") == b"aaaabbbbccccddddaaaabbbbccccdddd"


@pytest.mark.parametrize("content", [None, "", "uninitialized\n"])
def test_no_identity_refuses_to_seal(machine: Path, tmp_path: Path, content: str | None) -> None:
    if content is None:
        machine.unlink()
    else:
        machine.write_text(content)
    with pytest.raises(NoMachineIdentity, match="NHIGW_MASTER_KEY"):
        SecretBox(tmp_path / "agent", "cloud-sam")
    assert not (tmp_path / "agent" / ".box.key").exists()  # nothing written that a constant would then protect


def test_master_key_stands_in_for_the_identity(machine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine.unlink()
    monkeypatch.setenv("NHIGW_MASTER_KEY", "a random secret of this install")
    blob = SecretBox(tmp_path / "a", "cloud-sam").seal(b"x")
    assert SecretBox(tmp_path / "b", "cloud-sam").open(blob) == b"x"  # the key is the secret, not the directory
    monkeypatch.setenv("NHIGW_MASTER_KEY", "another install")
    with pytest.raises(SecretBoxError):
        SecretBox(tmp_path / "a", "cloud-sam").open(blob)


def test_windows_and_macos_seams_without_their_source(monkeypatch: pytest.MonkeyPatch) -> None:
    # This is Linux: no winreg, no ioreg. Each seam then finds no identity, and sealing is refused
    # (before, these platforms fell back to a constant).
    for platform in ("win32", "darwin"):
        with pytest.raises(NoMachineIdentity, match=platform):
            machine_identity(platform)
    monkeypatch.setitem(secretbox.IDENTITY_SOURCES, "win32", lambda: b"4c4c4544-0042-3510-8052-b4c04f4d3232")
    assert machine_identity("win32") == b"4c4c4544-0042-3510-8052-b4c04f4d3232"


def test_ioreg_output_parsed() -> None:
    out = '''+-o J293AP  <class IOPlatformExpertDevice, id 0x100000110, registered, matched, active, busy 0 (1 ms), retain 37>
    {
      "IOPlatformSerialNumber" = "C02XXXXXXXXX"
      "IOPlatformUUID" = "8D3B6A0C-2F4E-5B1A-9C7D-0E1F2A3B4C5D"
    }'''
    assert parse_ioreg_uuid(out) == b"8D3B6A0C-2F4E-5B1A-9C7D-0E1F2A3B4C5D"
    assert parse_ioreg_uuid('"IOPlatformSerialNumber" = "C02"') is None
