"""The agent's HTTPS certificates, as `nhigw up` runs them: one local CA for agent and compat, expiry visible.

- compat's certificate is signed by the agent's CA (the one `nhigw agent trust` installs), also
  when an older install left compat a CA of its own;
- when the agent's server certificate and CA end is in the agent's settings, in the presence
  the gateway keeps (``/api/workstations``) and on the gateway's ``/metrics``
  (``nhigw_agent_cert_expiry_seconds{workstation, kind}``), equal to the certificate files.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path

from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from nhigw.common.tls import LocalCA
from tests.helpers import Proc, free_port


def get(url: str, ctx: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        return bytes(r.read())


def not_after(path: Path) -> float:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc.timestamp()  # the first certificate of the file


def test_up_signs_compat_with_the_agent_ca_and_reports_certificate_expiry_to_the_gateway(tmp_path: Path) -> None:
    old_compat = LocalCA(tmp_path / "compat", "ws-01")  # an install from before: compat had a CA of its own
    old_compat.ensure()
    assert old_compat.ca_path == tmp_path / "compat" / "ca.crt"
    ports = {k: free_port() for k in ("sim", "agent", "gateway", "compat")}
    up = Proc("up", ["up", "--data-dir", str(tmp_path), *[a for k, v in ports.items() for a in (f"--{k}-port", str(v))]], tmp_path).wait_ready()
    try:
        agent_ca = tmp_path / "agent" / "ca.crt"
        strict = ssl.create_default_context(cafile=str(agent_ca))  # what a browser trusts after `nhigw agent trust`: the agent's CA only
        # compat: now under the agent's CA, verified with the host name checked.
        req = urllib.request.Request(f"https://localhost:{ports['compat']}/cshis/csGetHospID", data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, context=strict, timeout=10) as r:
            assert "pBuffer" in json.loads(r.read())
        x509.load_pem_x509_certificate((tmp_path / "compat" / "tls.crt").read_bytes()).verify_directly_issued_by(x509.load_pem_x509_certificate(agent_ca.read_bytes()))
        assert not old_compat.ca_path.exists() and not old_compat.ca_key_path.exists()  # its own CA, unused now, is gone

        server_end, ca_end = not_after(tmp_path / "agent" / "tls.crt"), not_after(agent_ca)
        assert server_end < ca_end
        settings = json.loads(get(f"https://localhost:{ports['agent']}/api/common/v1/Settings", strict))
        assert settings["tls"] == {"serverNotAfter": server_end, "caNotAfter": ca_end}, settings

        gw = f"http://127.0.0.1:{ports['gateway']}"
        ws = {w["workstation"]: w for w in json.loads(get(gw + "/api/workstations"))["workstations"]}
        assert ws["ws-01"]["online"] and ws["ws-01"]["tls"] == {"serverNotAfter": server_end, "caNotAfter": ca_end}, ws
        series = {
            (s.labels["workstation"], s.labels["kind"]): s.value
            for fam in text_string_to_metric_families(get(gw + "/metrics").decode())
            if fam.name == "nhigw_agent_cert_expiry_seconds"
            for s in fam.samples
        }
        assert series == {("ws-01", "server"): server_end, ("ws-01", "ca"): ca_end}, series
    finally:
        assert up.stop() == 0
