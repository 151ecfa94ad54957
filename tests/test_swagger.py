"""Swagger where the seed says 6.0 serves it, with the UI files served locally (no CDN):
the agent at ``/api/swagger/index.html`` over ``/api/swagger/v1/swagger.json``; the simulator's
cloud business API at ``/api/swagger/...`` and its test API at ``/test/swagger/...``."""

from __future__ import annotations

from nhigw.contracts.api import AGENT, SIM
from nhigw.protogen import openapi
from tests.stack import Stack, running_stack


async def _get(s: Stack, url: str) -> tuple[int, str, bytes]:
    async with s.http.get(url, allow_redirects=False) as r:
        return r.status, r.headers.get("Location", r.content_type), await r.read()


async def _ui_is_served(s: Stack, base: str) -> None:
    status, ctype, page = await _get(s, base + "/index.html")
    assert (status, ctype) == (200, "text/html") and b'id="swagger-ui"' in page and b"//" not in page.split(b"<body>")[1], page
    status, _, js = await _get(s, base + "/swagger-ui-bundle.js")
    assert status == 200 and len(js) > 100_000  # the swagger-ui-bundle package's own file, not a CDN
    status, _, css = await _get(s, base + "/swagger-ui.css")
    assert status == 200 and len(css) > 1000
    status, where, _ = await _get(s, base)
    assert status == 302 and where.endswith("/swagger/index.html")


async def test_the_agent_serves_swagger_where_the_seed_says() -> None:
    async with running_stack() as s:
        base = s.agent_url + "/api/swagger"
        await _ui_is_served(s, base)
        async with s.http.get(base + "/v1/swagger.json") as r:
            assert r.status == 200
            doc = await r.json()
        assert doc == openapi("agent", AGENT)  # the document nhigw proto writes to proto/openapi/agent.json
        assert {"/api/common/v1/Initial", "/api/hpc/v1/Verification/Hpc", "/api/hc/v1/Signature/Hc"} <= set(doc["paths"])
        # Fetching the documents is not a component call: the agent's call record does not list it.
        async with s.http.get(s.agent_url + "/api/common/v1/Record") as r:
            records = (await r.json())["records"]
        assert not any("swagger" in str(rec) for rec in records), records


async def test_the_simulator_serves_the_clouds_and_the_test_apis_swagger() -> None:
    async with running_stack() as s:
        for base, prefix, must in (("/api/swagger", "/api/", "/api/v1/BasicData/Register"), ("/test/swagger", "/test/", "/test/v1/ApplyVirtualHc/Apply")):
            await _ui_is_served(s, s.sim_url + base)
            async with s.http.get(s.sim_url + base + "/v1/swagger.json") as r:
                assert r.status == 200
                doc = await r.json()
            assert must in doc["paths"] and all(p.startswith(prefix) for p in doc["paths"]), sorted(doc["paths"])
            assert {p for p in doc["paths"]} == {e.path for e in SIM if e.path.startswith(prefix)}
