"""``nhigw up`` starts compat: HTTPS with its own certificate under the agent's CA, business calls through the gateway (a real process)."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path

from tests.helpers import Proc, free_port, insecure_ssl


def post(url: str, body: dict[str, object], ctx: ssl.SSLContext) -> dict[str, object]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return json.loads(r.read())


def test_up_serves_compat_over_https(tmp_path: Path) -> None:
    ports = {k: free_port() for k in ("sim", "agent", "gateway", "compat")}
    up = Proc(
        "up",
        ["up", "--data-dir", str(tmp_path), "--sim-port", str(ports["sim"]), "--agent-port", str(ports["agent"]), "--gateway-port", str(ports["gateway"]), "--compat-port", str(ports["compat"])],
        tmp_path,
    ).wait_ready()
    try:
        base = f"https://127.0.0.1:{ports['compat']}"
        ctx = insecure_ssl()
        assert post(base + "/VHC/VHCcsOpenCom", {}, ctx)["ERRORCODE"] == 0
        basic = post(base + "/VHC/VHChisGetBasicData", {}, ctx)
        assert basic["ERRORCODE"] == 0 and str(basic["pBuffer"]).startswith("000073898381測試十")
        assert (tmp_path / "compat" / "tls.crt").exists()  # its own certificate, made on first start
        # The certificate is a real one for localhost, signed by the agent's local CA (what `nhigw agent trust` installs).
        strict = ssl.create_default_context(cafile=str(tmp_path / "agent" / "ca.crt"))
        assert post(base + "/cshis/csGetHospID", {}, strict)["pBuffer"] == "3501200000"
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['gateway']}/api/audit", timeout=10) as r:
            audit = json.loads(r.read())
        assert any(rec["route"] == "BasicData/Query" for rec in audit["records"])  # compat's calls went through the gateway
    finally:
        assert up.stop() == 0
