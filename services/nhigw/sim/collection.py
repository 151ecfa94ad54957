"""The request collection for HIS developers (``docs/collection/*.http``), generated here.

``python -m nhigw.sim.collection`` writes the files; ``--check`` says whether the committed ones
are what this generator writes (``tests/test_collection.py`` runs the check and then every
request of every file against a running stack, so the collection cannot rot).

The flows are the calls a 6.0 HIS makes (public facts 3.3a, as ``tests/test_conformance_his.py``
makes them): a registration, a visit with its writes, a virtual-card visit with a test card
applied through the test-card API, a daily upload. Every cloud call takes its signature from
the agent first (``DELETE /api/hc/v1/Logout`` before every HC signature, as the public client
does; for a virtual HC, ``Verification/VirtualHc`` with the one scanned token again).

Generated from the OpenAPI documents and the seeded data: each step's method and path must be an
operation of the agent's or the simulator's OpenAPI document (``nhigw.protogen.openapi`` over
``contracts/api.py``, the documents ``proto/openapi/*.json`` hold), whose summary becomes the
step's title; each body is validated against that operation's request model (with example
values in place of the ``{{...}}`` references) and each captured field must be a field of the
named step's response model; card numbers, birthdays and the institution come from the seeded
identities (``vcard/data/identities.json``) and patients (``sim/data/patients.json``).

Two formats of the same steps:

- ``docs/collection/*.http``, VS Code REST Client's (also run by httpyac): file variables for the
  hosts (``@agent``, ``@cloud``), ``###`` between requests, ``# @name`` on a request whose answer
  a later one reads as ``{{name.response.body.$.field}}``. ``# @expect statusCode 0 1001`` lines
  are comments to those clients, read by the CI runner (``tests/httpfile.py``): the answer's
  field must have one of the values (``statusCode`` 0 when a step names none);
- ``docs/collection/jetbrains/*.http``, the JetBrains HTTP Client's: the hosts from
  ``http-client.env.json`` (environments ``simulator`` and ``gateway``), and after each request a
  response handler that checks the expected value (``client.test``) and keeps the fields later
  steps read (``client.global.set("name_field", response.body.field)``, used as
  ``{{name_field}}``); the CI runner reads both from the handler.

Choices (the seed is silent): signatures are copied field by field, and an HC signature's body
names only the fields an HC signature always fills (``signature``, ``clientRandom``, ``samId``,
``hospitalId``, ``hcId``, ``hcIdNo``; the three-card one adds ``hpcId``, ``hpcIdNo``): a
reference to an absent field would be sent as its literal text. ``sUploadDT`` is the agent's
``ServerDateTime`` (the simulator refuses an upload signed over an hour ago, 8203). The virtual-
card flow gives its test card back at the end (``ApplyVirtualHc/Delete``), so the flow can run
again within the 10 test cards of an institution; the formal upload (``A1``) of the same file is
accepted once per institution, as the cloud does.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from nhigw.contracts import api
from nhigw.vcard.identities import Identities

OUT = Path(__file__).resolve().parents[3] / "docs" / "collection"
HOSTS = {"agent": "https://localhost:5066", "cloud": "http://127.0.0.1:8068"}
HPC_PIN = "12345678"  # the seeded doctor card's test PIN (README: Test cards)
HC_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "hcId", "hcIdNo")
HPCHC_FIELDS = (*HC_FIELDS, "hpcId", "hpcIdNo")
SAM_FIELDS = ("signature", "clientRandom", "samId", "hospitalId")
REF = re.compile(r"\{\{(\w+)\.response\.body\.\$\.(\w+)\}\}")
# what a reference stands for when a body is validated (the shape of the real value)
EXAMPLES = {"treatmentDateTime": "1150101093000", "serverDateTime": "1150101093000", "cardSn": "000090000001", "token": "NHIVHC1.x.y"}


@dataclass(frozen=True)
class Step:
    host: str  # "agent" | "cloud"
    method: str
    path: str
    body: dict[str, Any] | None = None
    name: str | None = None  # the answer is read by later steps
    expect: tuple[str, tuple[Any, ...]] = ("statusCode", (0,))
    note: str = ""


@dataclass
class Flow:
    file: str
    title: str
    about: list[str]
    steps: list[Step] = field(default_factory=list)

    def add(self, *steps: Step) -> None:
        self.steps.extend(steps)


def ref(name: str, fld: str) -> str:
    return f"{{{{{name}.response.body.$.{fld}}}}}"


def signed(name: str, fields: tuple[str, ...]) -> dict[str, str]:
    return {f: ref(name, f) for f in fields}


def open_steps() -> list[Step]:
    """What an HIS does first: the status, Initial (1001 "already initialised" counts as done), the SAM verified."""
    return [
        Step("agent", "GET", "/api/common/v1/Status"),
        Step("agent", "POST", "/api/common/v1/Initial", {}, expect=("statusCode", (0, 1001)), note="1001 (already initialised) counts as done"),
        Step("agent", "POST", "/api/sam/v1/Verification", {}),
    ]


def hc_signature(name: str, service_type: str, *, three_card: bool = False, token: str | None = None) -> list[Step]:
    """Logout, (the virtual HC's token again), then the signature: what 6.0 HIS code does before every HC call."""
    steps = [Step("agent", "DELETE", "/api/hc/v1/Logout")]
    if token is not None:
        steps.append(Step("agent", "POST", "/api/hc/v1/Verification/VirtualHc", {"token": token}, note="the one scanned QR code again"))
    path = "/api/hc/v1/Signature/HpcHc" if three_card else "/api/hc/v1/Signature/Hc"
    steps.append(Step("agent", "POST", path, {"serviceType": service_type}, name=name))
    return steps


def sam_signature(name: str, service_type: str) -> Step:
    return Step("agent", "POST", "/api/sam/v1/Signature", {"serviceType": service_type}, name=name)


def _drugs(when: str) -> list[dict[str, str]]:
    return [
        {"days": "07", "deliveryNotes": "01", "totalQuantity": "21.00", "treatmentDateTime": when, "treatmentItem": "1", "treatmentItemCode": "AC12345100", "treatmentPosition": "", "usage": "TID"},
        {"days": "01", "deliveryNotes": "03", "totalQuantity": "0000001", "treatmentDateTime": when, "treatmentItem": "3", "treatmentItemCode": "33012B", "treatmentPosition": "", "usage": ""},
    ]


def flows(ids: Identities | None = None) -> list[Flow]:
    ids = ids or Identities.load()
    hc = next(iter(ids.hcs.values()))  # 測試十, no HC PIN: the card in the reader of the flows with a physical card
    hospital = next(iter(ids.sams.values())).hospitalId
    number = {"treatmentItem": "01", "babyTreatment": "", "afterCheck": "1"}

    reg = Flow("01-registration.http", "掛號 (registration)", [
        f"The health card in the reader ({hc.name}, card {hc.cardNo}) and the SAM of institution {hospital}.",
        "One cloud call: BasicData/Register with the HC signature (serviceType 01).",
    ])
    reg.add(*open_steps(), *hc_signature("sigRegister", "01"), Step("cloud", "POST", "/api/v1/BasicData/Register", signed("sigRegister", HC_FIELDS)))

    visit = Flow("02-visit-with-writes.http", "看診與寫入 (a visit with its writes)", [
        "The doctor's card verified (PIN), a sequence number, the diagnosis and fees, two prescription lines,",
        "then the read that needs the doctor's card (three-card signature) shows what was written.",
    ])
    when = ref("next", "treatmentDateTime")
    visit.add(
        *open_steps(),
        Step("agent", "POST", "/api/hpc/v1/Verification/Hpc", {"pin": HPC_PIN}, note="the seeded doctor card's test PIN"),
        *hc_signature("sigNext", "03"),
        Step("cloud", "POST", "/api/v1/SequelNumber/Next", {**number, **signed("sigNext", HC_FIELDS)}, name="next"),
        *hc_signature("sigCodeFee", "02"),
        Step("cloud", "POST", "/api/v1/Treatment/WriteCodeFee", {
            "afterCheck": "1", "treatmentDateTime": when, "mainCode": "J00", "subCode1": "R05", "outpatientFee": 420, "costFee": 50, **signed("sigCodeFee", HC_FIELDS),
        }),
        *hc_signature("sigPrescription", "02"),
        Step("cloud", "POST", "/api/v1/Prescription/Write", {"treatmentDateTime": when, "prescriptions": _drugs(when), **signed("sigPrescription", HC_FIELDS)}),
        *hc_signature("sigRead", "01", three_card=True),
        Step("cloud", "POST", "/api/v1/Treatment/NeedHPC", {"format": "0", **signed("sigRead", HPCHC_FIELDS)}),
    )

    birthday = "0800101"
    vhc = Flow("03-virtual-card-visit.http", "虛擬健保卡看診 (a virtual-card visit)", [
        "A virtual test card applied through the test-card API (SAM signature, serviceType 06), its QR code,",
        "the card's basic data, registration, a sequence number and the diagnosis; the test card given back at the end.",
    ])
    token = ref("qr", "token")
    vhc.add(
        *open_steps(),
        sam_signature("sigApply", "06"),
        Step("cloud", "POST", "/test/v1/ApplyVirtualHc/Apply", {"sex": "F", "birthday": birthday, "isForeigner": False, **signed("sigApply", SAM_FIELDS)}, name="card"),
        Step("cloud", "POST", "/test/v1/VirtualHc/QrCode", {"cardNo": ref("card", "cardSn"), "birthday": birthday}, name="qr", note="what the patient's phone shows"),
        Step("agent", "POST", "/api/hc/v1/VirtualHc/ReadBasic", {"token": token}),
        *hc_signature("sigRegister", "01", token=token),
        Step("cloud", "POST", "/api/v1/BasicData/Register", signed("sigRegister", HC_FIELDS)),
        *hc_signature("sigNext", "03", token=token),
        Step("cloud", "POST", "/api/v1/SequelNumber/Next", {**number, **signed("sigNext", HC_FIELDS)}, name="next"),
        *hc_signature("sigCodeFee", "02", token=token),
        Step("cloud", "POST", "/api/v1/Treatment/WriteCodeFee", {"afterCheck": "1", "treatmentDateTime": when, "mainCode": "J06.9", "outpatientFee": 350, **signed("sigCodeFee", HC_FIELDS)}),
        Step("agent", "DELETE", "/api/hc/v1/Logout", note="the virtual card leaves the workstation"),
        sam_signature("sigDelete", "06"),
        Step("cloud", "POST", "/test/v1/ApplyVirtualHc/Delete", {"cardSn": ref("card", "cardSn"), "birthday": birthday, **signed("sigDelete", SAM_FIELDS)}, note="its place of the 10 is free again"),
    )

    xml = f"<?xml version='1.0' encoding='Big5'?><RECS><REC><MSH><A00>1</A00><A01>{hospital}</A01></MSH></REC></RECS>".encode("big5")
    upload = Flow("04-upload.http", "每日上傳 (the daily IC-data upload)", [
        "The pre-check (A2) and then the formal upload (A1) of one file, each with a fresh SAM signature (serviceType 30).",
        "sUploadDT: the agent's ServerDateTime (an upload signed over an hour ago is refused, 8203). A1 of the same file is accepted once.",
    ])
    upload.add(*open_steps(), Step("agent", "GET", "/api/common/v1/ServerDateTime", name="now"))
    for s_type in ("A2", "A1"):
        sig = f"sig{s_type}"
        upload.add(sam_signature(sig, "30"), Step("cloud", "POST", "/V2000/VNHI_Upload", {
            "sType": s_type, "sPatData": base64.b64encode(xml).decode(), "sUploadDT": ref("now", "serverDateTime") + "000",
            "sSamId": ref(sig, "samId"), "sHospId": ref(sig, "hospitalId"), "sClientRandom": ref(sig, "clientRandom"), "sSignature": ref(sig, "signature"),
        }, expect=("RtnCode", ("0000",))))
    return [reg, visit, vhc, upload]


# ------------------------------------------------------------------ checks against the OpenAPI documents


def documents() -> dict[str, dict[str, Any]]:
    from nhigw.protogen import openapi

    return {"agent": openapi("agent", api.AGENT), "cloud": openapi("sim", api.SIM)}


def _row(step: Step) -> api.Endpoint:
    rows = api.AGENT if step.host == "agent" else api.SIM
    return next(r for r in rows if r.method == step.method and r.path == step.path)


def _example(value: Any) -> Any:
    if isinstance(value, str):
        whole = REF.fullmatch(value)
        if whole:
            return EXAMPLES.get(whole.group(2), "x")
        return REF.sub(lambda m: EXAMPLES.get(m.group(2), "x"), value)
    if isinstance(value, dict):
        return {k: _example(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_example(v) for v in value]
    return value


def _refs(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return REF.findall(value)
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def check(flow_list: list[Flow], docs: dict[str, dict[str, Any]]) -> list[str]:
    """Problems of the flows against the OpenAPI documents and their models (empty: none)."""
    problems = []
    for flow in flow_list:
        named: dict[str, type[BaseModel] | None] = {}
        for i, step in enumerate(flow.steps, 1):
            where = f"{flow.file} step {i} {step.method} {step.path}"
            if step.method.lower() not in docs[step.host]["paths"].get(step.path, {}):
                problems.append(f"{where}: not an operation of the {step.host}'s OpenAPI document")
                continue
            row = _row(step)
            for name, fld in _refs(step.body):
                if name not in named:
                    problems.append(f"{where}: reads {name!r}, which no earlier step names")
                elif (model := named[name]) is not None and fld not in model.model_fields:
                    problems.append(f"{where}: {name}'s answer ({model.__name__}) has no field {fld!r}")
            if row.request is not None and step.body is not None:
                try:
                    row.request.model_validate(_example(step.body))
                except ValidationError as exc:
                    problems.append(f"{where}: body does not fit {row.request.__name__}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
            if step.name:
                named[step.name] = row.response
    return problems


# ------------------------------------------------------------------ rendering


def _summary(docs: dict[str, dict[str, Any]], step: Step) -> str:
    summary = str(docs[step.host]["paths"][step.path][step.method.lower()]["summary"])
    return summary.split(" [")[0]  # the business rows' signature note is said by the step itself


def _head(flow: Flow, client: str) -> list[str]:
    return [
        f"# {flow.title} — nhigw request collection",
        "# Generated by `python -m nhigw.sim.collection` from the OpenAPI documents (proto/openapi/) and the seeded",
        f"# test data; do not edit by hand. Runs in {client}: send the requests in order.",
        *(f"# {line}" for line in flow.about),
        "#",
        "# agent: the 6.0 component on the workstation (nhigw agent / nhigw up).",
        "# cloud: the NHI cloud: the simulator (nhigw sim, :8068), or the gateway (:8066) which passes signed calls on.",
    ]


def _title(docs: dict[str, dict[str, Any]], i: int, step: Step) -> str:
    return f"### {i}. {_summary(docs, step)}" + (f" — {step.note}" if step.note else "")


def render(flow: Flow, docs: dict[str, dict[str, Any]]) -> str:
    """VS Code REST Client (and httpyac): file variables, ``# @name``, ``{{name.response.body.$.field}}``."""
    out = [*_head(flow, "VS Code REST Client or httpyac"), f"@agent = {HOSTS['agent']}", f"@cloud = {HOSTS['cloud']}", ""]
    for i, step in enumerate(flow.steps, 1):
        out.append(_title(docs, i, step))
        if step.name:
            out.append(f"# @name {step.name}")
        key, values = step.expect
        if (key, values) != ("statusCode", (0,)):
            out.append(f"# @expect {key} {' '.join(str(v) for v in values)}")
        out.append(f"{step.method} {{{{{step.host}}}}}{step.path}")
        if step.body is not None:
            out += ["Content-Type: application/json", "", json.dumps(step.body, ensure_ascii=False, indent=2)]
        out.append("")
    return "\n".join(out)


def render_jetbrains(flow: Flow, docs: dict[str, dict[str, Any]]) -> str:
    """JetBrains HTTP Client: hosts from ``http-client.env.json``, each answer checked by a
    ``client.test`` and the fields later steps read kept with ``client.global.set`` as ``{{name_field}}``."""
    used: dict[str, list[str]] = {}
    for step in flow.steps:
        for name, fld in _refs(step.body):
            if fld not in used.setdefault(name, []):
                used[name].append(fld)
    out = [*_head(flow, "the JetBrains HTTP Client (IntelliJ IDEA, PyCharm ...; the environment: http-client.env.json)"), ""]
    for i, step in enumerate(flow.steps, 1):
        out.append(_title(docs, i, step))
        out.append(f"{step.method} {{{{{step.host}}}}}{step.path}")
        if step.body is not None:
            body = REF.sub(lambda m: f"{{{{{m.group(1)}_{m.group(2)}}}}}", json.dumps(step.body, ensure_ascii=False, indent=2))
            out += ["Content-Type: application/json", "", body]
        key, values = step.expect
        expected = json.dumps(list(values))
        out += [
            "",
            "> {%",
            f'    client.test("{key} {" or ".join(str(v) for v in values)}", function () {{ client.assert({expected}.includes(response.body.{key}), "{key} " + response.body.{key}); }});',
            *(f'    client.global.set("{step.name}_{fld}", response.body.{fld});' for fld in (used.get(step.name, []) if step.name else [])),
            "%}",
            "",
        ]
    return "\n".join(out)


JETBRAINS_ENV = {
    "simulator": {"agent": HOSTS["agent"], "cloud": HOSTS["cloud"]},
    "gateway": {"agent": HOSTS["agent"], "cloud": "http://127.0.0.1:8066"},
}


def files() -> dict[str, str]:
    """Every file of the collection by its path under ``docs/collection``."""
    docs = documents()
    fl = flows()
    problems = check(fl, docs)
    if problems:
        raise ValueError("the collection does not fit the OpenAPI documents:\n" + "\n".join(problems))
    out = {f.file: render(f, docs) for f in fl}
    out |= {f"jetbrains/{f.file}": render_jetbrains(f, docs) for f in fl}
    out["jetbrains/http-client.env.json"] = json.dumps(JETBRAINS_ENV, indent=2) + "\n"
    return out


def stale(out: Path = OUT) -> list[str]:
    """Files of ``out`` that differ from what the generator writes (or are missing / not its own)."""
    want = files()
    problems = [f"differs: {name}" for name, text in want.items() if not (out / name).exists() or (out / name).read_text(encoding="utf-8") != text]
    problems += [f"not generated: {p.relative_to(out)}" for p in sorted([*out.glob("*.http"), *out.glob("jetbrains/*")]) if str(p.relative_to(out)) not in want]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nhigw.sim.collection", description="write the HIS request collection (docs/collection/*.http)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="only say whether the committed files are up to date")
    args = ap.parse_args(argv)
    if args.check:
        problems = stale(args.out)
        print("\n".join(problems) or "docs/collection is up to date")
        return 1 if problems else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (args.out / name).parent.mkdir(parents=True, exist_ok=True)
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
