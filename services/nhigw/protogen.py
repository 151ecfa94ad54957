"""``nhigw proto [--check]``: the wire contracts in ``proto/``, generated from the code.

- ``proto/openapi/{agent,gateway,sim,compat}.json``: OpenAPI 3.1 of each HTTP service, one
  operation per row of its list in ``contracts/api.py`` (request and response schemas from the
  rows' pydantic models; every operation also documents the JSON error body).
- ``proto/schemas/<Message>.json``: JSON Schema of every bus message in ``contracts/models.py``,
  found, not listed: every model class defined there with a ``type`` field typed ``Literal``.

``--check`` writes nothing and exits 1 when a committed file differs from what the code
generates, or a generated kind of file exists that the code no longer produces
(``tests/test_proto_drift.py`` runs the same check). Output is deterministic: sorted keys,
2-space indent, UTF-8, one trailing newline.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from nhigw import __version__
from nhigw.compat.endpoints import COMPAT
from nhigw.contracts import api
from nhigw.contracts import models as m
from nhigw.contracts.codes import HTTP_STATUS, message

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENAPI_DIR = "proto/openapi"
SCHEMA_DIR = "proto/schemas"
CODED = ("agent", "gateway", "sim")  # documents on the 6.0 HTTP contract (``http_status_rule``)
TITLES = {
    "agent": "nhigw reader agent: the 6.0 component API",
    "gateway": "nhigw gateway",
    "sim": "nhigw NHI cloud simulator: business API, DC, test-card and admin API",
    "compat": "nhigw compat: csHis and virtual-card SDK 2.x shapes",
}


def services() -> dict[str, list[api.Endpoint]]:
    return {"agent": api.AGENT, "gateway": api.GATEWAY, "sim": api.SIM, "compat": COMPAT}


def bus_messages() -> list[type[BaseModel]]:
    """Every model of ``contracts/models.py`` with a ``type: Literal[...]`` field, by name."""
    out = []
    for _name, obj in vars(m).items():
        if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == m.__name__:
            f = obj.model_fields.get("type")
            if f is not None and get_origin(f.annotation) is Literal:
                out.append(obj)
    return sorted(out, key=lambda c: c.__name__)


def _op_id(method: str, path: str) -> str:
    return method.lower() + "_" + re.sub(r"[^0-9A-Za-z]+", "_", path).strip("_")


def openapi(name: str, rows: list[api.Endpoint]) -> dict[str, Any]:
    error_model = api.ERROR_MODELS.get(name, m.ErrorBody)
    coded = name in CODED  # compat answers in the legacy shapes, with its own statuses
    models: set[type[BaseModel]] = {error_model}
    for r in rows:
        models.update(x for x in (r.request, r.response) if x is not None)
    ordered = sorted(models, key=lambda c: (c.__name__, c.__module__))
    keys, defs = models_json_schema([(c, "validation") for c in ordered], ref_template="#/components/schemas/{model}")
    ref = {c: keys[(c, "validation")] for c in ordered}
    err = {"description": "a refusal before any 6.0 rule ran (see the document's description): a statusCode with zh / en messages" if coded else "error: a 6.0 statusCode with zh / en messages", "content": {"application/json": {"schema": ref[error_model]}}}
    paths: dict[str, dict[str, Any]] = {}
    for r in rows:
        op: dict[str, Any] = {"summary": r.summary, "operationId": _op_id(r.method, r.path)}
        if r.tag:
            op["tags"] = [r.tag]
        params = re.findall(r"\{([^}:]+)(?::[^}]*)?\}", r.path)
        if params:
            op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
        if r.request is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref[r.request]}}}
        answer = ref[r.response] if r.response is not None else {"type": "object"}
        if coded:
            ok: dict[str, Any] = {"description": "the answer: statusCode 0 and its fields, or a 6.0 refusal (non-zero statusCode, zh / en messages)"}
            ok["content"] = {"application/json": {"schema": {"anyOf": [answer, ref[error_model]]}}}
        else:
            ok = {"description": "OK", "content": {"application/json": {"schema": answer}}}
        op["responses"] = {"200": ok, "default": err}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLES.get(name, name), "version": __version__, **({"description": http_status_rule()} if coded else {})},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {})},
    }


def http_status_rule() -> str:
    """The HTTP status contract of every document, from ``nhigw.contracts.codes.HTTP_STATUS``."""
    others = "; ".join(f"HTTP {s}: {int(c)} {message(c)[1]}" for c, s in sorted(HTTP_STATUS.items(), key=lambda cs: cs[1]))
    return (
        "Every answer that carries a 6.0 statusCode is HTTP 200, refusals included (statusCode non-zero, with message, messageEn"
        " and any detail such as triesLeft), as the real 6.0 component and cloud answer: HIS code calls raise_for_status() and reads"
        f" statusCode only from 2xx bodies. The only other statuses: {others}."
    )


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def generate() -> dict[str, str]:
    """Relative path -> file text, for every file this generator owns."""
    out = {f"{OPENAPI_DIR}/{name}.json": _dump(openapi(name, rows)) for name, rows in services().items()}
    for cls in bus_messages():
        out[f"{SCHEMA_DIR}/{cls.__name__}.json"] = _dump(cls.model_json_schema())
    return out


def check(root: Path, files: dict[str, str] | None = None) -> list[str]:
    """What differs between ``root`` and the generated files (empty: no drift)."""
    files = generate() if files is None else files
    problems = []
    for rel, text in sorted(files.items()):
        path = root / rel
        if not path.exists():
            problems.append(f"missing: {rel}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: {rel}")
    for d in (OPENAPI_DIR, SCHEMA_DIR):
        for path in sorted((root / d).glob("*.json")) if (root / d).is_dir() else []:
            rel = path.relative_to(root).as_posix()
            if rel not in files:
                problems.append(f"stale: {rel}")
    return problems


def write(root: Path) -> list[str]:
    """Write every generated file and remove stale ones; returns what changed."""
    files = generate()
    changed = check(root, files)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for line in changed:
        if line.startswith("stale: "):
            (root / line[7:]).unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nhigw proto", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    p.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)")
    args = p.parse_args(argv)
    if args.check:
        problems = check(args.root)
        for line in problems:
            print(line)
        if problems:
            print("proto/ is out of date: run `nhigw proto`", file=sys.stderr)
            return 1
        print("proto/ is up to date")
        return 0
    for line in write(args.root):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
