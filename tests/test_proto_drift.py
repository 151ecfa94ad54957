"""``proto/`` is generated from the code (``nhigw proto``) and cannot drift from it; every row of
``contracts/api.py`` is served by its service."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Literal

import jsonschema
import openapi_spec_validator
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from nhigw import protogen
from nhigw.compat.endpoints import COMPAT
from nhigw.contracts import api
from nhigw.contracts import models as m
from tests import stack as stack_mod
from tests.helpers import site_url

ROOT = Path(__file__).resolve().parents[1]


def test_committed_proto_matches_the_code() -> None:
    problems = protogen.check(ROOT)
    assert problems == [], "proto/ is out of date: run `nhigw proto` and commit proto/\n" + "\n".join(problems)


@pytest.mark.parametrize("service", ["agent", "gateway", "sim", "compat"])
def test_openapi_documents_are_valid_openapi_3_1(service: str) -> None:
    doc = json.loads((ROOT / "proto/openapi" / f"{service}.json").read_text(encoding="utf-8"))
    openapi_spec_validator.validate(doc)
    rows = protogen.services()[service]
    assert sum(len(ops) for ops in doc["paths"].values()) == len(rows)


def test_bus_schemas_are_valid_json_schema() -> None:
    for path in sorted((ROOT / "proto/schemas").glob("*.json")):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_every_bus_message_has_a_schema_and_the_known_ones_are_found() -> None:
    names = {c.__name__ for c in protogen.bus_messages()}
    assert {"Presence", "SignCall", "SignReply"} <= names
    assert all((ROOT / "proto/schemas" / f"{n}.json").exists() for n in names)


def test_the_checker_fails_when_a_model_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    assert protogen.check(tmp_path) == []  # the copy is clean

    class Presence(m.Presence):  # a field added without regenerating
        extra_field: int = 0

    monkeypatch.setattr(m, "Presence", Presence)
    Presence.__module__ = m.__name__
    assert protogen.check(tmp_path) == ["differs: proto/schemas/Presence.json"]
    assert protogen.main(["--check", "--root", str(tmp_path)]) == 1

    class NewMessage(m.Model):  # a new bus message is discovered, not listed
        type: Literal["new"] = "new"

    NewMessage.__module__ = m.__name__
    monkeypatch.setattr(m, "NewMessage", NewMessage, raising=False)
    assert "missing: proto/schemas/NewMessage.json" in protogen.check(tmp_path)

    monkeypatch.setattr(api, "SIM", [*api.SIM, api.Endpoint("GET", "/test/v1/New", "new", None, None)])
    assert "differs: proto/openapi/sim.json" in protogen.check(tmp_path)

    assert protogen.main(["--root", str(tmp_path)]) == 0  # regenerate: clean again
    assert protogen.check(tmp_path) == []
    (tmp_path / "proto/schemas/Gone.json").write_text("{}")
    assert protogen.check(tmp_path) == ["stale: proto/schemas/Gone.json"]


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


async def _unrouted_async(app: web.Application, rows: list[api.Endpoint]) -> list[str]:
    """Rows the app does not serve: a path template must be registered as such (same method, the
    same placeholders in the same places; their names may differ); a plain path must resolve (catch-all routes such as the simulator's
    ``/api/v1/{path:.+}`` count)."""
    templates = {(r.method, _shape(r.resource.canonical)) for r in app.router.routes() if r.resource is not None}
    out = []
    for r in rows:
        if "{" in r.path:
            if (r.method, _shape(r.path)) not in templates and ("*", _shape(r.path)) not in templates:
                out.append(f"{r.method} {r.path}")
            continue
        match = await app.router.resolve(make_mocked_request(r.method, r.path, app=app))
        if match.http_exception is not None:
            out.append(f"{r.method} {r.path}")
    return out


async def test_every_api_row_is_routed_by_its_service(monkeypatch: pytest.MonkeyPatch) -> None:
    apps: dict[str, web.Application] = {}
    real_site = stack_mod._site

    async def capturing_site(app: web.Application, port: int = 0) -> web.AppRunner:
        runner = await real_site(app, port)
        apps[site_url(runner)] = app
        return runner

    monkeypatch.setattr(stack_mod, "_site", capturing_site)
    async with stack_mod.running_stack() as s:
        by_url = apps
        services = {"sim": (by_url[s.sim_url], api.SIM), "agent": (by_url[s.agent_url], api.AGENT), "gateway": (by_url[s.gateway_url], api.GATEWAY)}
        problems = {name: await _unrouted_async(app, rows) for name, (app, rows) in services.items() if rows}
    if COMPAT:
        from nhigw.compat.app import build

        compat = build("http://127.0.0.1:9", "http://127.0.0.1:9")
        problems["compat"] = await _unrouted_async(compat, COMPAT)
    assert all(rows for rows in (api.SIM, api.AGENT, api.GATEWAY))
    assert problems == {name: [] for name in problems}
    # and the other way round for the simulator: every route it serves is documented
    documented = {(r.method, _shape(r.path)) for r in api.SIM} | {("POST", "/api/v1/{}")}
    served = {(r.method, _shape(r.resource.canonical)) for r in services["sim"][0].router.routes() if r.resource is not None and r.method != "HEAD"}
    ui = {("GET", base + tail) for base in ("/api/swagger", "/test/swagger") for tail in ("", "/", "/index.html", "/init.js")}  # Swagger UI's page and files: not API
    console = {("GET", "/console"), ("GET", "/console/"), ("GET", "/console/static")}  # the developer console's page and files: not API
    assert served - documented - ui - console == {("GET", "/healthz")}
