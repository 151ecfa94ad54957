"""Cloud SAM: issued by the simulator's test-card API, imported sealed, chosen by Initial, verified by itself,
signing in software; a copy of the data directory under another key does not open."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from nhigw.common.secretbox import SecretBox, SecretBoxError
from tests.agent_stack import HC, SAM, AgentStack, agent_stack


@pytest.fixture(autouse=True)
def _no_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NHIGW_MASTER_KEY", raising=False)


async def issue(s: AgentStack, **kw: str) -> dict:
    status, f = await s.sim("/test/v1/CloudSam/Issue", {"hospitalId": "3501200000", **kw})
    assert status == 200 and f["format"] == "nhigw-cloud-sam-1", f
    return f


async def test_cloud_sam_import_initial_auto_verify_and_signature_accepted(tmp_path: Path) -> None:
    async with agent_stack(["", HC], data_dir=tmp_path / "a") as s:  # no physical SAM
        f = await issue(s, samId="901000000047")
        status, body = await s.a("POST", "/api/common/v1/Settings/CloudSam", f)
        assert status == 200 and body["cloudSams"][0]["samId"] == "901000000047"
        files = list((tmp_path / "a" / "cloudsam").glob("*.sealed"))
        assert [p.name for p in files] == ["901000000047.sam.sealed"]
        raw = files[0].read_bytes()
        assert b"PRIVATE KEY" not in raw and f["privateKeyPem"][40:80].encode() not in raw
        _, listed = await s.a("GET", "/api/common/v1/Settings/CloudSam")
        assert listed["cloudSams"] == [{"samId": "901000000047", "hospitalId": "3501200000", "hospitalName": "臺北虛擬診所", "hospitalShortName": "臺北虛擬診", "comPort": "COMX1", "usable": True}]
        _, names = await s.a("GET", "/api/common/v1/Name")
        assert names["names"][0] == "901000000047" and "COM1" in names["names"]

        # Initial by samId: the cloud SAM verifies itself with the DC (state 2 at once).
        assert await s.code("POST", "/api/common/v1/Initial", {"name": "901000000047"}) == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["device"] == "901000000047" and st["status"]["sam"]["status"] == 2 and st["status"]["hc"]["status"] == 2
        _, basic = await s.a("GET", "/api/sam/v1/Basic")
        assert basic["samId"] == "901000000047" and basic["hospitalName"] == "臺北虛擬診所"
        _, t = await s.a("GET", "/api/common/v1/ServerDateTime")
        assert t["source"] == "dc" and len(t["serverDateTime"]) == 13

        status, sig = await s.a("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"})
        assert status == 200 and sig["samId"] == "901000000047" and len(sig["signature"]) == 344
        status, reg = await s.sim("/api/v1/BasicData/Register", sig)
        assert status == 200 and reg["cardSn"] == "000073898381"
        status, sam_sig = await s.a("POST", "/api/sam/v1/Signature", {"serviceType": "01"})
        assert status == 200 and "hcId" not in sam_sig

        # Logout 2 -> 1, verify again by hand.
        assert await s.code("POST", "/api/sam/v1/Logout") == 0
        assert await s.code("POST", "/api/hc/v1/Signature/Hc", {"serviceType": "01"}) == 1301
        assert await s.code("POST", "/api/sam/v1/Verification") == 0

        # Initial with no name: the last device (the cloud SAM) again.
        assert await s.code("POST", "/api/common/v1/Finalize") == 0
        assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
        assert s.agent.device == "901000000047" and s.agent.sam_state == 2
        assert await s.code("DELETE", "/api/common/v1/Settings/CloudSam/901000000047") == 1001  # in use


async def test_sealed_cloud_sam_does_not_open_on_another_machine_or_user(tmp_path: Path) -> None:
    async with agent_stack(["", HC], data_dir=tmp_path / "a") as s:
        f = await issue(s)
        assert await s.code("POST", "/api/common/v1/Settings/CloudSam", f) == 0
        sam_id = f["samId"]
    # The data directory's cloud SAMs copied to another host (another .box.key, as on another machine/user).
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "cloudsam", tmp_path / "b" / "cloudsam")
    async with agent_stack(["", HC], data_dir=tmp_path / "b") as s:
        _, listed = await s.a("GET", "/api/common/v1/Settings/CloudSam")
        assert listed["cloudSams"][0]["samId"] == sam_id and listed["cloudSams"][0]["usable"] is False
        status, body = await s.a("POST", "/api/common/v1/Initial", {"name": sam_id})
        assert status == 200 and body["statusCode"] == 9202 and "import" in body["detail"]
        _, names = await s.a("GET", "/api/common/v1/Name")
        assert sam_id not in names["names"]
        # Importing the file again here works (this stack's simulator is a fresh one: it learns the key too).
        key = serialization.load_pem_private_key(f["privateKeyPem"].encode(), password=None)
        s.store.register_sam(sam_id, "3501200000", key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
        assert await s.code("POST", "/api/common/v1/Settings/CloudSam", f) == 0
        assert await s.code("POST", "/api/common/v1/Initial", {"name": sam_id}) == 0
        assert s.agent.sam_state == 2
    # The sealing itself: a box under another key does not open it.
    blob = SecretBox(tmp_path / "a", "cloud-sam").seal(b"secret")
    with pytest.raises(SecretBoxError):
        SecretBox(tmp_path / "c", "cloud-sam").open(blob)
    with pytest.raises(SecretBoxError):
        SecretBox(tmp_path / "a", "vcard-keys").open(blob)  # another purpose, another key


async def test_bad_files_and_device_choice(tmp_path: Path) -> None:
    async with agent_stack([SAM, HC], data_dir=tmp_path) as s:
        for bad in (b"not json", b'{"format": "nhigw-cloud-sam-1"}', b'{"samId": "901000000047", "hospitalId": "3501200000", "privateKeyPem": "-----BEGIN nonsense"}'):
            status, body = await s.a("POST", "/api/common/v1/Settings/CloudSam", data=bad)
            assert status == 200 and body["statusCode"] == 1610
        assert await s.code("POST", "/api/common/v1/Settings/CloudSam") == 1705
        assert await s.code("DELETE", "/api/common/v1/Settings/CloudSam/999999999999") == 1611
        assert await s.code("POST", "/api/common/v1/Initial", {"name": "999999999999"}) == 1002
        assert await s.code("POST", "/api/common/v1/Initial", {"name": "no such reader"}) == 1600
        assert await s.code("POST", "/api/common/v1/Initial", {"name": "COM9"}) == 1002
        # The physical SAM by its id; not verified automatically (a physical SAM never is).
        assert await s.code("POST", "/api/common/v1/Initial", {"name": "001000000103"}) == 0
        assert s.agent.device == "001000000103" and s.agent.sam_state == 1
        assert await s.code("POST", "/api/common/v1/Finalize") == 0
        # With a cloud SAM imported and a physical SAM present, no name, the last device wins: the physical SAM.
        f = await issue(s)
        assert await s.code("POST", "/api/common/v1/Settings/CloudSam", f) == 0
        assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
        assert s.agent.device == "001000000103" and s.agent.cloud is None
        assert await s.code("POST", "/api/common/v1/Finalize") == 0
        # No last device: the cloud SAM before the physical one (seed order).
        s.agent.settings.update(lastDevice=None)
        assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
        assert s.agent.device == f["samId"] and s.agent.sam_state == 2
        # The default reader: with a cloud SAM only that reader's cards are used.
        assert await s.code("POST", "/api/common/v1/Finalize") == 0
        status, body = await s.a("PUT", "/api/common/v1/Settings/Reader", {"reader": "COM1"})
        assert status == 200 and body["defaultReader"] == s.bank.names[0]
        assert await s.code("PUT", "/api/common/v1/Settings/Reader", {"reader": "nope"}) == 1600
        assert await s.code("POST", "/api/common/v1/Initial", {}) == 0
        _, st = await s.a("GET", "/api/common/v1/Status")
        assert st["status"]["reader"] == s.bank.names[0] and st["status"]["hc"]["status"] == 0  # the HC sits in reader 1


def test_nhigw_sam_import_list_remove_cli(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from nhigw.agent.cloudsam import CloudSamStore
    from nhigw.contracts.models import CloudSamIssueRequest
    from nhigw.sim.dc import _new_cloud_sam
    from tests.helpers import ROOT

    f = _new_cloud_sam(CloudSamIssueRequest(samId="901000000047", hospitalId="7777777777", hospitalName="測試機構"))
    path = tmp_path / "901000000047.sam"
    path.write_text(f.model_dump_json(), encoding="utf-8")

    def nhigw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nhigw", "sam", *args, "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, cwd=ROOT, timeout=60)

    r = nhigw("import", str(path))
    assert r.returncode == 0 and "901000000047" in r.stdout
    path.unlink()  # the seed: the file may be deleted once imported
    assert CloudSamStore(tmp_path / "d" / "agent").get("901000000047").file.hospitalName == "測試機構"
    r = nhigw("list")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["usable"] is True
    bad = tmp_path / "bad.sam"
    bad.write_text("{}")
    r = nhigw("import", str(bad))
    assert r.returncode == 1 and "1610" in r.stderr
    assert nhigw("remove", "901000000047").returncode == 0
    assert nhigw("remove", "901000000047").returncode == 1
