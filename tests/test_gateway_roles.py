"""Roles (issue 21 item 1): every endpoint of README's roles table tried with every role, for its own
hospital and another, on a real Redis; allowed or refused exactly as the table says.

The table is read from README.md itself, so the documentation and the gateway cannot drift apart.
A hospital's key on another hospital's dead letter, client or workstation is refused (404 / 403); an
all-hospitals key is not. What ``/api/ops/me`` says a key may do (the dashboard's buttons) and the
actions each dead letter offers follow the same table, and every allowed action left an audit record
naming the key.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nhigw.bus.redis import RedisBus
from nhigw.contracts.codes import Code
from nhigw.contracts.models import QueuedJob
from nhigw.gateway.app import create_app
from nhigw.gateway.auth import Clients, Role
from nhigw.gateway.service import Gateway, GatewaySettings
from tests.helpers import ROOT, serving

pytestmark = pytest.mark.redis

A, B = "3501200000", "3501209999"
ROLES = ("his", "viewer", "operator", "admin")
REFUSED = {(403, 9411), (404, 9405)}


def readme_table() -> list[tuple[str, str, dict[str, bool]]]:
    """(method, path, {role: allowed}) for each row of README's roles table."""
    rows = []
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\s*\| `(GET|POST|PUT|DELETE) (/[^`]+)`[^|]*\|(.+)\|\s*$", line)
        if m:
            cells = [c.strip() for c in m.group(3).split("|")]
            assert len(cells) == 4 and set(cells) <= {"✓", "–"}, line
            rows.append((m.group(1), m.group(2), dict(zip(ROLES, (c == "✓" for c in cells), strict=True))))
    assert len(rows) >= 15, "README's roles table not found"
    return rows


async def seed_dead_letter(gw: Gateway, hospital: str, *, landed: bool = False) -> str:
    """A dead letter of ``hospital``: queued, delivered once and reclaimed past ``max_deliveries=1``
    (as a job whose replica died); ``landed``: a write whose ``attempted`` marker is set."""
    now = time.time()
    idem = uuid.uuid4().hex
    job = QueuedJob(requestId=uuid.uuid4().hex, idempotencyKey=idem, answerKey=uuid.uuid4().hex, path="/api/v1/EmergentTel/Write" if landed else "/api/v1/BasicData/Query",
                    body="{}", workstation=None, client="his-a", hospitalId=hospital, write=landed, enqueuedAt=now, deadline=now + 30)
    await gw.queue.add(job)
    if landed:
        await gw.kv.set(gw.keys.attempted(job.answerKey), b"1", ttl_s=60)
    await gw.queue.read("seed", count=1000, block_s=0.1)  # ours, and any re-run an operator put back before it
    await gw.queue.claim_stale("seed", min_idle_s=0)
    return next(d.id for d in await gw.queue.dead() if job.requestId.encode() in d.raw)


async def test_every_endpoint_by_role_and_hospital_as_the_readme_table_says(redis_server: str, bus_prefix: str, tmp_path: Path) -> None:
    f = tmp_path / "clients.json"
    keys: dict[str, str] = {}
    scope: dict[str, str | None] = {}  # key name -> its hospital (None: all)
    for role in ROLES:
        r = None if role == "his" else Role(role)
        keys[f"{role}-a"] = Clients.add(f, f"{role}-a", A, ["a-*"], role=r)
        scope[f"{role}-a"] = A
        if r is not None:
            keys[f"{role}-all"] = Clients.add(f, f"{role}-all", None, ["*"], role=r, all_hospitals=True)
            scope[f"{role}-all"] = None
    unscoped = Clients.add(f, "operator-none", None, ["*"], role=Role.OPERATOR)
    bus = RedisBus(redis_server)
    try:
        gw = Gateway(bus, GatewaySettings(cloud_url="http://cloud.invalid", prefix=bus_prefix, gateway_key=os.urandom(32), clients=Clients.load(f), max_deliveries=1))
        table = readme_table()
        allowed_actions: list[tuple[str, str]] = []  # (audit route, key name) of every allowed action
        async with serving(create_app(gw, workers=False)) as url, aiohttp.ClientSession() as http:

            async def req(key: str, method: str, path: str, body: Any = None) -> tuple[int, int, dict[str, Any]]:
                async with http.request(method, url + path, json=body, headers={"Authorization": f"Bearer {key}"}) as r:
                    data = await r.json(content_type=None)
                    return r.status, int(data.get("statusCode", 0)) if isinstance(data, dict) else 0, data

            n_clients = 0
            for method, template, allowed_by_role in table:
                for name, key in keys.items():
                    role = name.split("-")[0]
                    for target in (A, B):
                        path, body, audit_route = template, None, None
                        needs_target = "{" in template or template in ("/api/admin/clients", "/api/admin/enrol-tokens")
                        if not needs_target and target == B:
                            continue  # the same call; its scope is checked below
                        if "{id}" in template:
                            did = await seed_dead_letter(gw, target, landed=template.endswith("/resend"))
                            path = template.replace("{id}", did)
                            body = {"reconciled": True, "note": "checked EmergentTel/Query"} if template.endswith("/resend") else None
                            audit_route = {"POST": "ops/dead-letters/" + template.rsplit("/", 1)[-1], "DELETE": "ops/dead-letters/discard"}.get(method)
                        elif "{ws}" in template:
                            path = template.replace("{ws}", "a-01" if target == A else "b-01")
                        elif "{name}" in template:
                            n_clients += 1
                            victim = f"victim-{n_clients}"
                            Clients.add(f, victim, target, ["*"])
                            path = template.replace("{name}", victim)
                            audit_route = "ops/clients/remove"
                        elif template == "/api/admin/clients" and method == "POST":
                            n_clients += 1
                            body, audit_route = {"name": f"new-{n_clients}", "hospitalId": target, "role": "viewer"}, "ops/clients/add"
                        elif template == "/api/admin/enrol-tokens":
                            body, audit_route = {"workstation": "a-01" if target == A else "b-01"}, "ops/enrol-tokens/issue"
                        elif template == "/api/ops/dead-letters/bulk-retry":
                            await seed_dead_letter(gw, A)
                            body, audit_route = {"max": 1}, "ops/dead-letters/retry"
                        elif method == "POST":
                            body = {}
                        expected = allowed_by_role[role] and (scope[name] is None or target == scope[name] or not needs_target)
                        if template == "/api/audit/verify":
                            expected = expected and scope[name] is None
                        if template == "/api/admin/clients" and method == "GET":
                            expected = allowed_by_role[role]
                        status, code, data = await req(key, method, path, body)
                        refused = (status, code) in REFUSED
                        assert refused != expected, f"{name} {method} {path} (hospital {target}): {'refused' if refused else 'allowed'} {status} {data}"
                        if expected:
                            assert code in (0, Code.WORKSTATION_OFFLINE, Code.NOT_READY), (name, method, path, data)  # the (absent) workstation, past the role check
                            if audit_route:
                                allowed_actions.append((audit_route, name))

            # Scope of the lists: a hospital's key sees that hospital's only.
            await seed_dead_letter(gw, A)
            await seed_dead_letter(gw, B)
            for name, key in keys.items():
                if name.startswith("his"):
                    continue
                _, _, data = await req(key, "GET", "/api/ops/dead-letters")
                hospitals = {d["job"]["hospitalId"] for d in data["deadLetters"]}
                assert hospitals == ({A} if scope[name] == A else {A, B}), (name, hospitals)
                acting = name.split("-")[0] in ("operator", "admin")
                assert all(d["actions"] == (["retry", "discard"] if acting else []) for d in data["deadLetters"] if not d["mayHaveLanded"]), (name, data)
                _, _, listed = await req(key, "GET", "/api/admin/clients")
                if name.startswith("admin"):
                    assert {c["hospitalId"] for c in listed["clients"]} == ({A} if scope[name] == A else {A, B, None}), (name, listed)
            # What /api/ops/me says each key may do is the table's column (the dashboard shows only that).
            for name, key in keys.items():
                role = name.split("-")[0]
                _, _, me = await req(key, "GET", "/api/ops/me")
                assert me["role"] == (None if role == "his" else role)
                col = {path: allowed[role] for _method, path, allowed in table}
                assert me["may"]["dashboard"] == col["/api/ops/dead-letters"]
                assert me["may"]["dead-letters"] == col["/api/ops/dead-letters/{id}/retry"]
                assert me["may"]["clients"] == col["/api/admin/clients"] == me["may"]["enrol"]
            # A role key scoped to no hospital is refused every operator endpoint.
            for method, template, _ in table:
                if template == "/api/ops/me" or "{" in template:
                    continue
                status, code, _ = await req(unscoped, method, template, {} if method == "POST" else None)
                assert (status, code) in REFUSED, (method, template, status, code)
            # Every allowed action is an audit record naming the key that took it.
            _, _, page = await req(keys["admin-all"], "GET", "/api/audit?limit=1000")
            records = [(r["route"], r["client"]) for r in page["records"] if r["eventType"] == "ops"]
            for action in allowed_actions:
                assert action in records, (action, sorted(set(records)))
            assert len(records) >= len(allowed_actions)
            # A key added through the API works at once; removed, it is refused.
            _, _, made = await req(keys["admin-a"], "POST", "/api/admin/clients", {"name": "late-viewer", "hospitalId": A, "role": "viewer"})
            assert (await req(made["key"], "GET", "/api/ops/me"))[2]["role"] == "viewer"
            assert made["key"] not in f.read_text()
            assert (await req(keys["admin-a"], "DELETE", "/api/admin/clients/late-viewer"))[1] == 0
            assert (await req(made["key"], "GET", "/api/ops/me"))[0] == 401
    finally:  # on a failure too: an open client left to the collector fails a later test
        await bus.close()
