"""The client side of the link to the NHI cloud, in one place: which CAs to trust, proxies, which cloud.

Used by the three services that call the NHI cloud: the gateway (``nhigw.gateway.upstream``),
the agent's DC client (``nhigw.agent.dc``) and compat (its business-API client).

- **Trust** (:class:`CloudTls`): ``--cloud-ca FILE`` (or ``NHIGW_CLOUD_CA``), a PEM bundle, is the
  only set of CAs trusted for the cloud (a clinic behind a TLS-inspecting proxy gives that proxy's
  CA, with the public ones if it needs both); without it the system's store (``ssl`` default paths;
  on Windows the machine's certificate store). Verification is never turned off: a certificate that
  does not verify is :func:`untrusted_error`, a clear answer (the 6.0 code of the hop, with
  "certificate not trusted: see --cloud-ca" in Chinese and English) and one log line
  ``cloud_certificate_untrusted`` with the reason, never a silent downgrade.
- **Proxies**: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` from the environment, as aiohttp's
  ``trust_env`` reads them; a session for one host (the gateway's upstream) looks its proxy up once,
  when it is made. Library code does not read the environment: the command line decides
  (:func:`from_args` sets ``trust_env``), so a test or an embedding program gets what it passes.
- **Which cloud** (:func:`cloud_env`): the production cloud is ``https://medvpndc.nhi.gov.tw``,
  the test cloud ``https://medvpndct.nhi.gov.tw`` (seed: "使用測試卡時，業務邏輯端API須呼叫測試環境");
  any other URL (the simulator, a gateway) is neither unless ``--cloud-env`` names it.

Choices (the seed is silent): how a mix of test and production is noticed. A SAM is verified
against the DC its agent is pointed at (``agent --cloud``); the gateway sends one-call requests to
its own ``--cloud``. When both environments are known and differ, the gateway answers 1003
「正式卡與測試卡混用」 before asking the agent for a signature (``Gateway.process``), since the
real cloud would refuse a test SAM's signature or, worse, record a test visit as real.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from nhigw.common.logging import get_logger
from nhigw.contracts.codes import StatusError, message

log = get_logger("nhigw.cloudtls")

PRODUCTION_URL = "https://medvpndc.nhi.gov.tw"
TEST_URL = "https://medvpndct.nhi.gov.tw"
CloudEnv = Literal["production", "test"]
ENVS: dict[str, CloudEnv] = {urlsplit(PRODUCTION_URL).hostname or "": "production", urlsplit(TEST_URL).hostname or "": "test"}

UNTRUSTED_EN = "certificate not trusted: see --cloud-ca"
UNTRUSTED_ZH = "憑證不受信任：請見 --cloud-ca"


@dataclass(frozen=True)
class CloudTls:
    """How to reach the NHI cloud: ``ca_file`` (None: the system's store) and whether proxies come from the environment."""

    ca_file: Path | None = None
    trust_env: bool = False

    def context(self) -> ssl.SSLContext:
        """A verifying client context (hostname and chain); never one that skips verification."""
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def session(self, base_url: str | None = None, **kw: Any) -> aiohttp.ClientSession:
        """A client session with this trust and proxy setting (``connector`` options in ``kw['connector_kw']``).

        With ``base_url`` (a session for one host), the proxy for it is looked up in the environment
        once, here: aiohttp's ``trust_env`` would read the environment and ``~/.netrc`` again for
        every request, in a worker thread (two thread hand-offs per call, measured as the largest
        single cost of the gateway's request: bench/profile.py).
        """
        connector = aiohttp.TCPConnector(ssl=self.context(), **kw.pop("connector_kw", {}))
        if self.trust_env and base_url is not None:
            proxy, auth = proxy_for(base_url)
            return aiohttp.ClientSession(connector=connector, proxy=proxy, proxy_auth=auth, **kw)
        return aiohttp.ClientSession(connector=connector, trust_env=self.trust_env, **kw)


def proxy_for(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy ``HTTPS_PROXY`` / ``HTTP_PROXY`` name for ``url`` unless ``NO_PROXY`` exempts its host
    (aiohttp's own reading, credentials from the URL or ``~/.netrc``); (None, None) for none."""
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None


def add_cloud_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--cloud-ca", metavar="FILE", help="PEM CA bundle trusted for the NHI cloud (or NHIGW_CLOUD_CA); default: the system's store")
    sp.add_argument("--cloud-env", choices=["production", "test"],
                    help="which NHI cloud --cloud is (default: from its host, medvpndc = production, medvpndct = test; other URLs: unknown)")


def from_args(args: argparse.Namespace) -> CloudTls:
    """The command line's trust (``--cloud-ca``, or ``NHIGW_CLOUD_CA`` through ``nhigw.cli.ENVIRONMENT``); proxies from
    the environment (``HTTPS_PROXY``, ``NO_PROXY``)."""
    ca = getattr(args, "cloud_ca", None)
    if ca and not Path(ca).is_file():
        sys.exit(f"nhigw: --cloud-ca {ca}: no such file")
    if ca:
        try:
            ssl.create_default_context(cafile=ca)
        except (ssl.SSLError, ValueError) as exc:
            sys.exit(f"nhigw: --cloud-ca {ca} holds no usable PEM certificate ({exc})")
    return CloudTls(Path(ca) if ca else None, trust_env=True)


def cloud_env(url: str | None, declared: str | None = None) -> CloudEnv | None:
    """``production`` / ``test`` for the NHI's own hosts or as ``--cloud-env`` declares; None when unknown."""
    if declared in ("production", "test"):
        return "production" if declared == "production" else "test"
    return ENVS.get((urlsplit(url or "").hostname or "").lower())


def is_untrusted(exc: BaseException | None) -> bool:
    """Did this failure (or one it came from) refuse the peer's certificate?"""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError)):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def untrusted_reason(exc: BaseException | None) -> str:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):  # also an ssl.CertificateError, without its fields
            exc = exc.certificate_error
        if isinstance(exc, ssl.SSLCertVerificationError):
            return str(getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return "verification failed"


def untrusted_error(code: int, url: str, exc: BaseException | None = None) -> StatusError:
    """The answer for a cloud certificate that does not verify (``code``: 9402 for the gateway, 1700 for the DC), logged once here."""
    reason = untrusted_reason(exc)
    host = urlsplit(url).netloc or url
    log.error("cloud_certificate_untrusted", url=url, reason=reason, hint="give the CA that signs this cloud's certificate with --cloud-ca FILE")
    zh, en = message(code)
    return StatusError(code, f"{UNTRUSTED_EN} ({host}: {reason})", message=f"{zh}：{UNTRUSTED_ZH}", messageEn=f"{en}: {UNTRUSTED_EN}")
