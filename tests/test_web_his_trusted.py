"""A web HIS page in Chromium calls the agent cross-origin over HTTPS, trusting it only through `nhigw agent trust`.

No --ignore-certificate-errors: Chromium (run with a test HOME) reads $HOME/.pki/nssdb, which
`nhigw agent trust --nssdb` filled with the agent's local CA; the page's own site has a
certificate from a test CA put in the same database. Host names are mapped to 127.0.0.1.

- A listed origin calls the component API with fetch and opens the event stream; a card pulled
  out and put back in between shows up on the page. An unlisted origin gets nothing (fetch and
  the stream blocked) and changes nothing on the agent (no Initial, no PIN try, no Finalize).
- Renewal: the agent starts with its clock 85 days back (its server certificate is then near its
  end), the clock comes back, the certificate is renewed, and the same browser, same trust store,
  connects again over the new certificate (the page's stream reconnects and still sees cards).
Screenshots of the pages go to test-artifacts/web-his-trusted/.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nhigw.agent.app import create_app
from nhigw.common.tls import SERVER_DAYS, CertKeeper, utc_now
from nhigw.contracts.models import SamState
from nhigw.vcard.cards import HcCard
from tests.agent_stack import HC_PIN, SAM, AgentStack, agent_stack
from tests.helpers import ROOT, site_port
from tests.web_browser import CHROMEDRIVER, CHROMIUM, FLAGS, Page

LISTED, UNLISTED = "his.clinic.example", "evil.example"
HC_READER = 1  # agent_stack([SAM, HC_PIN]): the SAM in reader 0, the health card in reader 1

PAGE = """<!doctype html><meta charset="utf-8"><title>web HIS</title><h1>web HIS</h1>
<p>健保卡 (HC): <b id="hc">—</b> · events <b id="n">0</b> · stream errors <b id="err">0</b></p><pre id="out"></pre>
<script>
const agent = "__AGENT__";
window.results = {}; window.events = []; window.streamErrors = 0;
function show() {
  const last = window.events[window.events.length - 1];
  document.getElementById("hc").textContent = last === undefined ? "—" : (last.hc.status === 0 ? "無卡 (none)" : "有卡 (present, " + last.hc.status + ")");
  document.getElementById("n").textContent = window.events.length;
  document.getElementById("err").textContent = window.streamErrors;
  document.getElementById("out").textContent = location.host + "\\n" + JSON.stringify(window.results, null, 1);
}
async function call(name, method, path, body) {
  try {
    const r = await fetch(agent + path, body === undefined ? {method} :
      {method, headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const j = await r.json();
    window.results[name] = j.statusCode;
  } catch (e) { window.results[name] = "blocked"; }
  show();
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
window.init = async () => {
  await call("initial", "POST", "/api/common/v1/Initial", {});
  await call("sam", "POST", "/api/sam/v1/Verification", {});
  window.ready = true;
};
window.listen = () => {
  const es = new EventSource(agent + "/api/common/v1/Events");
  es.addEventListener("status", (e) => { window.events.push(JSON.parse(e.data).status); show(); });
  es.onerror = () => { window.streamErrors++; show(); };
};
</script>"""

HC_SHOWN = "const e = window.events[window.events.length - 1]; return e !== undefined && (e.hc.status === 0) === arguments[0];"


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


@dataclass
class WebHis:
    s: AgentStack
    keeper: CertKeeper
    agent: web.AppRunner
    page: Page
    page_port: int

    def hc(self) -> HcCard:
        return next(c for c in self.s.bank.cards.values() if isinstance(c, HcCard))

    async def open(self, host: str) -> None:
        await self.page.get(f"https://{host}:{self.page_port}/")

    def served_not_after(self) -> list[float]:
        """The agent's certificate as each response the browser got from it said (Chromium's own record, CDP Network events)."""
        ends = []
        for entry in self.page.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.responseReceived" and msg["params"]["response"]["url"].startswith("https://localhost:"):
                details = msg["params"]["response"].get("securityDetails")
                ends.append(float(details["validTo"]) if details else -1.0)
        return ends


@contextlib.asynccontextmanager
async def web_his(tmp_path: Path, clock: Any = utc_now) -> AsyncIterator[WebHis]:
    """The agent (HTTPS from its local CA, ``clock`` its clock), a page site serving both origins, and Chromium trusting them through the NSS db only."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    home = tmp_path / "home"
    nss = home / ".pki" / "nssdb"
    site_ca, site_crt, site_key = site_cert(tmp_path, [LISTED, UNLISTED])
    await asyncio.to_thread(fill_nssdb, nss, tmp_path / "data", site_ca)

    async with agent_stack([SAM, HC_PIN]) as s:
        keeper = CertKeeper(tmp_path / "data" / "agent", "ws-web", clock=clock)  # the CA `nhigw agent trust` installed
        s.agent.tls = keeper
        arunner = web.AppRunner(create_app(s.agent, cors_hosts=[LISTED]))
        await arunner.setup()
        await web.TCPSite(arunner, "127.0.0.1", 0, ssl_context=keeper.context).start()
        agent_port = site_port(arunner)
        page = web.Application()

        async def index(_req: web.Request) -> web.Response:
            return web.Response(text=PAGE.replace("__AGENT__", f"https://localhost:{agent_port}"), content_type="text/html")

        page.router.add_get("/", index)
        pctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        pctx.load_cert_chain(site_crt, site_key)
        prunner = web.AppRunner(page)
        await prunner.setup()
        await web.TCPSite(prunner, "127.0.0.1", 0, ssl_context=pctx).start()
        page_port = site_port(prunner)

        profile = tempfile.mkdtemp(prefix="nhigw-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for f in FLAGS:
            if "ignore-certificate-errors" not in f:
                opts.add_argument(f)
        opts.add_argument(f"--user-data-dir={profile}")
        opts.add_argument(f"--host-resolver-rules=MAP {LISTED} 127.0.0.1,MAP {UNLISTED} 127.0.0.1")
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = await asyncio.to_thread(webdriver.Chrome, options=opts, service=Service(str(CHROMEDRIVER), env={**os.environ, "HOME": str(home)}))
        shots = Path(os.environ.get("NHIGW_ARTIFACTS", str(ROOT / "test-artifacts"))) / "web-his-trusted"
        try:
            yield WebHis(s, keeper, arunner, Page(driver, shots), page_port)
        finally:
            await asyncio.to_thread(driver.quit)
            shutil.rmtree(profile, ignore_errors=True)
            await prunner.cleanup()
            await arunner.cleanup()


async def test_web_his_page_calls_the_agent_and_follows_its_event_stream_and_an_unlisted_origin_gets_nothing(tmp_path: Path) -> None:
    async with web_his(tmp_path) as w:
        p, s, hc = w.page, w.s, w.hc()
        # The unlisted origin first, with the agent opened by the workstation's own HIS (Initial, SAM verified), so that
        # a Finalize would show: nothing reaches the page, and nothing changes on the agent.
        await s.ready()
        tries_before, calls_before = hc.tries_left, len(s.agent.records)
        await w.open(UNLISTED)
        await p.js("window.listen(); window.run();")
        await p.wait("return window.done === true && window.streamErrors > 0;", 30)
        got = await p.js("return window.results;")
        assert set(got.values()) == {"blocked"}, got
        assert await p.js("return window.events.length;") == 0  # the stream was blocked too
        assert s.agent.initialized is True and s.agent.sam_state == SamState.VERIFIED  # no Finalize, no SAM logout
        assert hc.tries_left == tries_before  # no PIN try counted
        reached = [r.function for r in s.agent.records[calls_before:]]
        assert not [f for f in reached if not f.startswith("GET ")], reached  # no Initial, Pin, Signature or Finalize ran at all
        await p.shot("unlisted-origin")
        await s.a("POST", "/api/common/v1/Finalize")  # the listed page starts from a closed device, as a new visit
        # The listed origin: every call answered, over a certificate the browser verified.
        await w.open(LISTED)
        await p.js("window.run();")
        await p.wait("return window.done === true;", 60)
        got = await p.js("return window.results;")
        await p.shot("listed-origin")
        assert got["status"] == 0 and got["initial"] == 0 and got["sam"] == 0 and got["signature"] == 0 and got["finalize"] == 0, got
        assert got["pin"] not in ("blocked", 0) and hc.tries_left == tries_before - 1, got  # a wrong PIN: answered and counted here only
        # The event stream, cross-origin: the health card pulled out, then put back, shows on the page.
        await p.js("window.listen(); window.init();")
        await p.wait("return window.ready === true;", 30)
        await p.wait(HC_SHOWN, 10, False)
        s.remove(HC_READER)
        await p.wait(HC_SHOWN, 10, True)
        await p.shot("listed-origin-card-pulled")
        s.insert(HC_READER, HC_PIN)
        await p.wait(HC_SHOWN, 10, False)
        assert await p.js("return window.streamErrors;") == 0
        await p.shot("listed-origin-card-back")


async def test_renewed_certificate_still_trusted_by_the_browser_after_the_agent_clock_moves(tmp_path: Path) -> None:
    now = utc_now()
    clock = [now - dt.timedelta(days=SERVER_DAYS - 5)]  # the agent's clock, 85 days back at its start
    async with web_his(tmp_path, clock=lambda: clock[0]) as w:
        p, s = w.page, w.s
        # No TLS session tickets: Chromium would resume a session (with the certificate of its first handshake) for
        # hours; without them each new connection is a full handshake that verifies the certificate served then.
        w.keeper.context.num_tickets = 0
        old = w.keeper.expiry
        assert old is not None and old.serverNotAfter - now.timestamp() < 6 * 86400  # issued "85 days ago": 5 days left in real time
        await w.open(LISTED)
        await p.js("window.listen(); window.run();")
        await p.wait("return window.done === true && window.events.length > 0;", 60)
        assert (await p.js("return window.results;"))["status"] == 0
        assert set(w.served_not_after()) == {old.serverNotAfter}  # the browser verified the near-end one
        await p.shot("renewal-before")

        clock[0] = now  # the clock moves on: 85 of the 90 days used, past two thirds
        assert w.keeper.check() is True
        new = w.keeper.expiry
        assert new is not None and new.serverNotAfter > old.serverNotAfter + 80 * 86400 and new.caNotAfter == old.caNotAfter
        assert w.keeper.check() is False
        # The browser's open connections (pooled ones and the stream) end, as after an idle timeout: the next ones shake hands anew.
        conns = w.agent.server.connections if w.agent.server else []
        assert conns
        for conn in conns:
            conn.force_close()
        await p.js("window.results = {}; window.init();")
        await p.wait("return window.ready === true;", 60)
        got = await p.js("return window.results;")
        assert got == {"initial": 0, "sam": 0}, got
        # The page's stream reconnected by itself (EventSource retry) and still sees cards.
        await p.wait(HC_SHOWN, 15, False)
        s.remove(HC_READER)
        await p.wait(HC_SHOWN, 10, True)
        await p.shot("renewal-after")
        # Every answer since came over the renewed certificate, verified through the same NSS db.
        assert set(w.served_not_after()) == {new.serverNotAfter}
