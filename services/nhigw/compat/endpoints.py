"""The compat service's endpoints (VHC SDK 2.x routes, csHis functions, Swagger) as rows of the
``nhigw.contracts.api`` table: the source of ``proto/openapi/compat.json`` (``nhigw proto``).

They live here, not in ``contracts``, because they are built from compat's own route table
(``nhigw.compat.vhc``) and models; ``contracts`` imports nothing else of the project.
"""

from __future__ import annotations

from nhigw.compat import models as cm
from nhigw.compat.vhc import ROUTES, UNSUPPORTED
from nhigw.contracts.api import Endpoint

__all__ = ["COMPAT"]


def _compat_rows() -> list[Endpoint]:
    """The compat service: the VHC SDK 2.x routes, the csHis functions, Swagger."""
    rows = [
        Endpoint("GET", "/cshis", "列出 csHis 相容函式 (list the legacy functions)", None, None, "cshis"),
        Endpoint("POST", "/cshis/{function}", "呼叫 csHis 相容函式 (legacy parameters by name)", cm.LegacyRequest, cm.LegacyResponse, "cshis"),
        Endpoint("GET", "/swagger/v1/swagger.json", "OpenAPI 文件", None, None, "swagger"),
    ]
    rows += [Endpoint("POST", r.path, r.summary, r.request, cm.VhcResponse, r.path.split("/")[1]) for r in ROUTES]
    rows += [Endpoint("POST", u.path, f"{u.summary} — 不支援: {u.reason}", None, cm.UnsupportedResponse, u.path.split("/")[1]) for u in UNSUPPORTED]
    return rows


COMPAT: list[Endpoint] = _compat_rows()
