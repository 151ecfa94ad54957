"""A web HIS page in Chromium calls the agent cross-origin over HTTPS, trusting it only through `nhigw agent trust`.

No --ignore-certificate-errors: Chromium (run with a test HOME) reads $HOME/.pki/nssdb, which
`nhigw agent trust --nssdb` filled with the agent's local CA; the page's own site has a
certificate from a test CA put in the same database. Host names are mapped to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nhigw.agent.app import create_app
from nhigw.common.tls import CertKeeper
from nhigw.vcard.cards import HcCard
from tests.agent_stack import HC_PIN, SAM, agent_stack
from tests.helpers import ROOT, free_port
from tests.web_browser import CHROMEDRIVER, CHROMIUM, FLAGS, Page

LISTED, UNLISTED = "his.clinic.example", "evil.example"

PAGE = """<!doctype html><meta charset="utf-8"><title>web HIS</title><h1>web HIS</h1><pre id="out"></pre>
<script>
const agent = "__AGENT__";
window.results = {};
async function call(name, method, path, body) {
  try {
    const r = await fetch(agent + path, body === undefined ? {method} :
      {method, headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const j = await r.json();
    window.results[name] = j.statusCode;
  } catch (e) { window.results[name] = "blocked"; }
  document.getElementById("out").textContent = location.host + "\\n" + JSON.stringify(window.results, null, 1);
}
window.run = async () => {
  await call("status", "GET", "/api/common/v1/Status");
  await call("initial", "POST", "/api/common/v1/Initial", {});
  await call("sam", "POST", "/api/sam/v1/Verification", {});
  await call("pin", "POST", "/api/hc/v1/Pin", {pin: "0000"});
  await call("signature", "POST", "/api/hc/v1/Signature/Hc", {serviceType: "01"});
  await call("finalize", "POST", "/api/common/v1/Finalize", {});
  window.done = true;
};
</script>"""


def site_cert(tmp: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for the page's host names."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web HIS test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False).sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "site-ca.crt", tmp / "site.crt", tmp / "site.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def fill_nssdb(nss: Path, data: Path, site_ca: Path) -> None:
    """The agent's CA through `nhigw agent trust --nssdb` (which makes the CA, as the agent's first start would); the page's test CA with certutil."""
    r = subprocess.run([sys.executable, "-m", "nhigw", "agent", "trust", "--data-dir", str(data), "--workstation", "ws-web", "--nssdb", str(nss)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "web HIS test CA", "-t", "C,,", "-i", str(site_ca)], check=True)


async def test_web_his_page_calls_the_agent_trusted_through_the_nss_db_and_an_unlisted_origin_gets_nothing(tmp_path: Path) -> None:
    import ssl

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    home = tmp_path / "home"
    nss = home / ".pki" / "nssdb"
    site_ca, site_crt, site_key = site_cert(tmp_path, [LISTED, UNLISTED])
    await asyncio.to_thread(fill_nssdb, nss, tmp_path / "data", site_ca)

    async with agent_stack([SAM, HC_PIN]) as s:
        keeper = CertKeeper(tmp_path / "data" / "agent", "ws-web")  # the CA `nhigw agent trust` installed
        agent_port, page_port = free_port(), free_port()
        arunner = web.AppRunner(create_app(s.agent, cors_hosts=[LISTED]))
        await arunner.setup()
        await web.TCPSite(arunner, "127.0.0.1", agent_port, ssl_context=keeper.context).start()
        page = web.Application()

        async def index(_req: web.Request) -> web.Response:
            return web.Response(text=PAGE.replace("__AGENT__", f"https://localhost:{agent_port}"), content_type="text/html")

        page.router.add_get("/", index)
        pctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        pctx.load_cert_chain(site_crt, site_key)
        prunner = web.AppRunner(page)
        await prunner.setup()
        await web.TCPSite(prunner, "127.0.0.1", page_port, ssl_context=pctx).start()

        profile = tempfile.mkdtemp(prefix="nhigw-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for f in FLAGS:
            if "ignore-certificate-errors" not in f:
                opts.add_argument(f)
        opts.add_argument(f"--user-data-dir={profile}")
        opts.add_argument(f"--host-resolver-rules=MAP {LISTED} 127.0.0.1,MAP {UNLISTED} 127.0.0.1")
        driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER), env={**os.environ, "HOME": str(home)}))
        shots = Path(os.environ.get("NHIGW_ARTIFACTS", str(ROOT / "test-artifacts"))) / "web-his-trusted"
        p = Page(driver, shots)
        try:
            # The unlisted origin first: nothing reaches the page, and nothing changes on the agent.
            hc = next(c for c in s.bank.cards.values() if isinstance(c, HcCard))
            sam_before, tries_before = s.agent.sam_state, hc.tries_left
            await p.get(f"https://{UNLISTED}:{page_port}/")
            await p.js("window.run();")
            await p.wait("return window.done === true;", 30)
            got = await p.js("return window.results;")
            assert set(got.values()) == {"blocked"}, got
            assert s.agent.initialized is False and s.agent.sam_state == sam_before  # no Initial, no SAM verification
            assert hc.tries_left == tries_before  # no PIN try counted (and no Finalize: it was never initialised)
            await p.shot("unlisted-origin")
            # The listed origin: every call answered, over a certificate the browser verified.
            await p.get(f"https://{LISTED}:{page_port}/")
            await p.js("window.run();")
            await p.wait("return window.done === true;", 60)
            got = await p.js("return window.results;")
            await p.shot("listed-origin")
            assert got["status"] == 0 and got["initial"] == 0 and got["sam"] == 0 and got["signature"] == 0 and got["finalize"] == 0, got
            assert got["pin"] not in ("blocked", 0) and hc.tries_left == tries_before - 1, got  # a wrong PIN: answered and counted here only
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
            await prunner.cleanup()
            await arunner.cleanup()
