"""Fault drill: schemathesis against every OpenAPI document of the project, on live services.

Each service of ``proto/openapi/*.json`` runs as a real process (``nhigw sim``, ``gateway``
on Redis, ``agent --virtual``, ``compat`` in front of that agent and the gateway), and
``schemathesis run`` (its CLI, a child process) sends generated requests — valid and
invalid bodies, odd strings, missing fields — to every operation of the document, with
two checks: no 5xx (``not_a_server_error``) and every documented response matches its
schema (``response_schema_conformance``). A fixed seed and 5 examples per operation keep
it deterministic and the four documents well under 2 minutes. The simulator's admin API
stays off, so generated fault rules cannot turn into resets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nhigw.bus.seal import Sealer
from tests.helpers import ROOT, Proc, free_port

pytestmark = [pytest.mark.redis]

DOCS = sorted((ROOT / "proto" / "openapi").glob("*.json"))
# Failures found by this drill, reported to the owners and accepted until fixed: schemathesis
# fails the run only on failures *not* in this file. Refresh after a fix with
# NHIGW_ST_BASELINE=update (adds) or prune (drops the entries no longer reproduced).
BASELINE = ROOT / "tests" / "schemathesis-baseline.json"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def services(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    ports = {n: free_port() for n in ("sim", "gateway", "agent", "compat")}
    urls = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    procs: list[Proc] = []
    try:
        procs.append(Proc("sim", ["sim", "--port", str(ports["sim"])], tmp).wait_ready())
        procs.append(
            Proc("gateway", ["gateway", "--port", str(ports["gateway"]), "--cloud", urls["sim"], "--redis", redis_server, "--bus-key", Sealer.new_key_b64(), "--bus-prefix", f"st{ports['gateway']}"], tmp).wait_ready()
        )
        procs.append(Proc("agent", ["agent", "--virtual", "--no-tls", "--port", str(ports["agent"]), "--workstation", "ws-st", "--cloud", urls["sim"], "--data-dir", str(tmp / "data")], tmp).wait_ready())
        procs.append(Proc("compat", ["compat", "--no-tls", "--port", str(ports["compat"]), "--agent", urls["agent"], "--cloud", urls["gateway"], "--data-dir", str(tmp / "data")], tmp).wait_ready())
        yield urls
    finally:
        for p in reversed(procs):
            p.stop()


def test_every_service_has_a_document() -> None:
    assert {d.stem for d in DOCS} >= {"sim", "gateway", "agent", "compat"}, DOCS


@pytest.mark.parametrize("doc", DOCS, ids=[d.stem for d in DOCS])
def test_no_5xx_and_no_response_outside_its_schema(doc: Path, services: dict[str, str], tmp_path: Path) -> None:
    url = services[doc.stem]
    mode = os.environ.get("NHIGW_ST_BASELINE", "")
    baseline = ["--baseline", str(BASELINE)] + (["--baseline-update"] if mode == "update" else ["--baseline-prune"] if mode == "prune" else [])
    out = subprocess.run(
        [str(SCHEMATHESIS), "run", *(baseline if BASELINE.exists() or mode else []), str(doc), "--url", url, "--checks", "not_a_server_error,response_schema_conformance",
         "--max-examples", "5", "--seed", "1", "--phases", "examples,fuzzing", "--no-shrink", "--request-timeout", "10",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=110, cwd=ROOT,
    )
    tail = out.stdout[-6000:]
    assert "generated" in out.stdout, f"schemathesis did not run:\n{tail}\n{out.stderr[-2000:]}"
    assert out.returncode == 0, f"schemathesis found failures in {doc.name}:\n{tail}"
