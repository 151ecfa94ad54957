"""The shipped alert rules (deploy/prometheus/) on promtool and on a real Prometheus.

``promtool check rules`` and ``promtool test rules`` run the shipped rules at their real
durations (``nhigw-rules.test.yml``). A real Prometheus (Debian's ``prometheus``, its own
process, config and data directory in tmp, a free port) scrapes two gateway replicas on one
Redis every second; the rules it loads are a *test copy* of the shipped file in which every
``for:`` is 3 s (the expressions, labels and annotations are the shipped ones). With the
simulator stopped, ``NhiCloudUnreachable`` goes pending, then firing (once, for both
replicas), and resolves when the simulator is back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, Proc, eventually, free_port, stop_process, wait_port

pytestmark = pytest.mark.redis

RULES = ROOT / "deploy" / "prometheus" / "nhigw-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "nhigw-gateway.json"
FOR_IN_TEST = "3s"
# Exported only by a replica that streams its audit (--audit-syslog; tests/test_audit_syslog.py reads them there),
# so that replicas without a receiver have no series for NhigwAuditSyslogDown to fire on.
ONLY_WHEN_CONFIGURED = {f"nhigw_gateway_audit_syslog_{m}" for m in ("connected", "queued", "sent_total", "resent_total", "dropped_total")}


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is required: apt-get install prometheus (scripts/bootstrap.sh --test does it)")
    return exe


def test_promtool_checks_and_unit_tests_the_shipped_rules() -> None:
    promtool = _tool("promtool")
    for args in (["check", "rules", str(RULES)], ["check", "config", str(RULES.with_name("prometheus.yml"))], ["test", "rules", str(RULES.with_name("nhigw-rules.test.yml"))]):
        r = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "SUCCESS" in r.stdout + r.stderr


def test_every_alert_has_severity_summaries_and_a_runbook_line() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    runbook = (ROOT / "deploy" / "README.md").read_text()
    names = {a["alert"] for a in alerts}
    assert {"NhiCloudUnreachable", "NhiCloudBreakerOpen", "NhigwQueueBacklog", "NhigwQueueStalled", "NhigwDeadLettersGrowing", "NhigwWorkstationOffline",
            "NhigwSamNotVerified", "NhigwCertificateExpiring", "NhigwAuditChainBroken"} <= names
    for a in alerts:
        assert a["labels"]["severity"] in ("critical", "warning"), a
        ann = a["annotations"]
        assert re.search(r"[\u4e00-\u9fff]", ann["summary_zh"]) and re.fullmatch(r"[ -~]+", ann["summary"]), a
        anchor = ann["runbook_url"].split("#", 1)[1]
        assert f"#### {a['alert']}\n" in runbook and anchor == a["alert"].lower(), a


def _test_copy(dst: Path) -> Path:
    """The shipped rules with every ``for:`` shortened to ``FOR_IN_TEST`` (nothing else changed)."""
    doc = yaml.safe_load(RULES.read_text())
    for g in doc["groups"]:
        for r in g["rules"]:
            if "for" in r:
                r["for"] = FOR_IN_TEST
    dst.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return dst


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Path:
    d = tmp_path / "prometheus"
    d.mkdir()
    return d


def _start_prometheus(d: Path, targets: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    exe = _tool("prometheus")
    _test_copy(d / "rules.yml")
    (d / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [{"job_name": "nhigw-gateway", "static_configs": [{"targets": targets}]}],
    }))
    port = free_port()
    log = open(d / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [exe, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=d,
    )
    log.close()
    wait_port("127.0.0.1", port, timeout_s=30, proc=proc)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def clinic(redis_server: str, bus_key: str, bus_prefix: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The simulator, two gateway replicas on one Redis, and a virtual-card agent (with its TLS certificates)."""
    ports = {n: free_port() for n in ("sim", "gw1", "gw2", "agent")}
    sim_url = f"http://127.0.0.1:{ports['sim']}"
    bus = ["--redis", redis_server, "--bus-key", bus_key, "--bus-prefix", bus_prefix]
    procs: dict[str, Proc] = {}
    try:
        procs["sim"] = Proc("sim", ["sim", "--port", str(ports["sim"])], tmp_path).wait_ready()
        for gw in ("gw1", "gw2"):
            procs[gw] = Proc(gw, ["gateway", "--port", str(ports[gw]), "--cloud", sim_url, "--data-dir", str(tmp_path / gw), *bus], tmp_path).wait_ready()
        token = subprocess.run([sys.executable, "-m", "nhigw", "gateway", "enrol-token", "--workstation", "ws-07", *bus], check=True, capture_output=True, text=True).stdout.strip()
        procs["agent"] = Proc("agent", ["agent", "--virtual", "--auto-init", "--port", str(ports["agent"]), "--workstation", "ws-07", "--cloud", sim_url,
                                        "--data-dir", str(tmp_path / "agent"), "--redis", redis_server, "--bus-prefix", bus_prefix, "--enrol-token", token], tmp_path).wait_ready()
        yield {"ports": ports, "procs": procs, "tmp": tmp_path, "gateways": [f"127.0.0.1:{ports['gw1']}", f"127.0.0.1:{ports['gw2']}"]}
    finally:
        for p in reversed(list(procs.values())):
            p.stop()


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with http.get(url, params=params) as r:
        body = await r.json()
        assert body["status"] == "success", body
        return body["data"]


async def test_cloud_unreachable_alert_pending_firing_resolved_on_a_real_prometheus(clinic: dict[str, Any], prometheus_dir: Path) -> None:
    proc, prom = _start_prometheus(prometheus_dir, clinic["gateways"])
    try:
        async with aiohttp.ClientSession() as http:

            async def query(q: str) -> list[dict[str, Any]]:
                return (await _get(http, prom + "/api/v1/query", query=q))["result"]

            async def alerts(name: str) -> list[dict[str, Any]]:
                return [a for a in (await _get(http, prom + "/api/v1/alerts"))["alerts"] if a["labels"]["alertname"] == name]

            async def ready() -> bool:  # the port opens before the storage and the rules are loaded (503 meanwhile)
                async with http.get(prom + "/-/ready") as r:
                    return r.status == 200

            assert await eventually(ready, 30), (prometheus_dir / "prometheus.log").read_text()[-3000:]

            async def both_up() -> bool:
                return len(await query('nhigw_gateway_cloud_up{job="nhigw-gateway"} == 1')) == 2

            assert await eventually(both_up, 30), (prometheus_dir / "prometheus.log").read_text()[-3000:]
            # what else the rules and the dashboard read arrives too: the workstation, its SAM, its certificates
            assert await eventually(lambda: _has(query('nhigw_gateway_workstation_online{workstation="ws-07"} == 1'), 2), 20)
            certs = await query('nhigw_agent_cert_expiry_seconds{workstation="ws-07"} - time()')
            assert {c["metric"]["kind"] for c in certs} == {"ca", "server"} and all(float(c["value"][1]) > 80 * 86400 for c in certs), certs
            assert await eventually(lambda: _has(query("nhigw_gateway_audit_chain_ok == 1"), 2), 10)
            assert await alerts("NhiCloudUnreachable") == []

            clinic["procs"]["sim"].stop()
            t0 = time.monotonic()
            assert await eventually(lambda: _state(alerts("NhiCloudUnreachable"), "pending"), 30)
            assert await eventually(lambda: _state(alerts("NhiCloudUnreachable"), "firing"), 30)
            # Each replica probes on its own schedule: the alert may fire when the first one notices, and its
            # summary counts the second one as soon as it does; it stays one alert for the clinic throughout.
            assert await eventually(lambda: _summary(alerts("NhiCloudUnreachable"), "The NHI cloud cannot be reached from 2 gateway replica(s)"), 30)
            firing = await alerts("NhiCloudUnreachable")
            assert len(firing) == 1, firing  # once for the clinic, not once per replica
            a = firing[0]
            assert a["state"] == "firing" and a["labels"] == {"alertname": "NhiCloudUnreachable", "job": "nhigw-gateway", "severity": "critical"}
            assert a["annotations"]["summary_zh"] == "2 個閘道連不到健保署雲端（VPN／網路）"
            print(f"NhiCloudUnreachable firing {time.monotonic() - t0:.1f} s after the simulator stopped (test copy: for {FOR_IN_TEST}, scrape 1 s, probe every 5 s)")

            sim_port = clinic["ports"]["sim"]
            clinic["procs"]["sim"] = Proc("sim2", ["sim", "--port", str(sim_port)], clinic["tmp"]).wait_ready()
            assert await eventually(lambda: _none(alerts("NhiCloudUnreachable")), 30)
            assert await both_up()

            # The dashboard's queries are valid PromQL on this Prometheus, and every metric the rules or the
            # dashboard name is one the gateway exports.
            exported = await _exported(http, "http://" + clinic["gateways"][0] + "/metrics")
            dash = DASHBOARD.read_text()
            for expr in re.findall(r'"expr": "((?:[^"\\]|\\.)*)"', dash):
                q = expr.encode().decode("unicode_escape").replace("$job", "nhigw-gateway")
                await _get(http, prom + "/api/v1/query", query=q)
            used = set(re.findall(r"nhigw_(?:gateway|agent)_[a-z_]+", dash + RULES.read_text()))
            assert used and {m for m in used if re.sub(r"_(total|bucket|count|sum)$", "", m) not in exported} - ONLY_WHEN_CONFIGURED == set()
    finally:
        stop_process(proc)


async def _exported(http: aiohttp.ClientSession, url: str) -> set[str]:
    async with http.get(url) as r:
        return {f.name for f in text_string_to_metric_families(await r.text())}


async def _has(coro: Any, n: int) -> bool:
    return len(await coro) == n


async def _state(coro: Any, state: str) -> bool:
    return any(a["state"] == state for a in await coro)


async def _summary(coro: Any, text: str) -> bool:
    found = await coro
    assert len(found) <= 1, found
    return bool(found) and found[0]["annotations"]["summary"] == text


async def _none(coro: Any) -> bool:
    return not await coro
