"""The request collection for HIS developers (``docs/collection/``) cannot rot.

- The committed ``.http`` files are what ``nhigw.sim.collection`` writes (generated from the
  OpenAPI documents and the seeded data), and the generator's check refuses a step that does
  not fit those documents.
- Every request of every file runs, in order, against a running stack (agent with the seeded
  SAM, HC and doctor card; simulator; gateway) through ``tests/httpfile.py``, with the cloud
  host set to the simulator and to the gateway (pass-through): each answer's ``statusCode``
  (``RtnCode`` for the upload) is the expected one, and the simulator holds what was written;
  both formats (VS Code REST Client's and JetBrains HTTP Client's, its response handlers too).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from nhigw.sim import collection
from tests.httpfile import parse, run
from tests.stack import running_stack

FLAVOURS = {"rest-client": collection.OUT, "jetbrains": collection.OUT / "jetbrains"}
TEXTS = {flavour: {p.name: p.read_text(encoding="utf-8") for p in sorted(d.glob("*.http"))} for flavour, d in FLAVOURS.items()}
ENV = json.loads((collection.OUT / "jetbrains" / "http-client.env.json").read_text(encoding="utf-8"))
CARDS = ["sam:001000000103", "hc:000073898381", "hpc:000000329470"]


def test_the_committed_collection_is_what_the_generator_writes() -> None:
    assert collection.stale() == [], "docs/collection is out of date: run `python -m nhigw.sim.collection` and commit it"
    for texts in TEXTS.values():
        assert list(texts) == ["01-registration.http", "02-visit-with-writes.http", "03-virtual-card-visit.http", "04-upload.http"]


def test_the_generator_refuses_steps_that_do_not_fit_the_openapi_documents() -> None:
    docs = collection.documents()
    flow = collection.flows()[1]  # the visit
    assert collection.check([flow], docs) == []
    steps = list(flow.steps)
    i = next(n for n, s in enumerate(steps) if s.path == "/api/v1/Treatment/WriteCodeFee")
    steps[i] = dataclasses.replace(steps[i], body={**(steps[i].body or {}), "outpatientFee": "a lot"})  # not an integer
    steps.append(collection.Step("cloud", "POST", "/api/v1/No/Such", {}))
    steps.append(collection.Step("cloud", "POST", "/api/v1/SequelNumber/Rollback", {"treatmentDateTime": collection.ref("next", "noSuchField")}))
    problems = collection.check([dataclasses.replace(flow, steps=steps)], docs)
    assert len(problems) == 4, problems
    assert "outpatientFee" in problems[0] and "not an operation" in problems[1] and "no field 'noSuchField'" in problems[2]
    assert "RollbackRequest: ('signature',) Field required" in problems[3]  # a cloud call without its signature


def test_every_file_names_the_hosts_as_variables_and_each_cloud_call_reads_a_signature_taken_before_it() -> None:
    assert all(set(env) == {"agent", "cloud"} for env in ENV.values()) and ENV["gateway"]["cloud"].endswith(":8066")
    for flavour, texts in TEXTS.items():
        for path, text in texts.items():
            f = parse(text)
            assert set(f.variables) == ({"agent", "cloud"} if flavour == "rest-client" else set()), path
            sigs: list[str] = []  # the signatures taken so far, newest last
            for req in f.requests:
                assert req.url.startswith(("{{agent}}", "{{cloud}}")), (path, req.url)
                if req.url.startswith("{{cloud}}/api/v1/") or "ApplyVirtualHc" in req.url or "VNHI_Upload" in req.url:
                    sig = sigs[-1] if sigs else ""
                    wanted = f"{{{{{sig}.response.body.$.signature}}}}" if flavour == "rest-client" else f"{{{{{sig}_signature}}}}"
                    assert wanted in (req.body or ""), (flavour, path, req.title)
                name = req.name or next((v.split("_")[0] for v, _ in req.sets if v.endswith("_signature")), None)
                if name and name.startswith("sig"):
                    sigs.append(name)


@pytest.mark.parametrize(("flavour", "cloud"), [("rest-client", "simulator"), ("rest-client", "gateway-pass-through"), ("jetbrains", "simulator"), ("jetbrains", "gateway-pass-through")])
async def test_every_request_of_the_collection_runs_against_a_running_stack(flavour: str, cloud: str) -> None:
    async with running_stack(cards=CARDS) as s:
        hosts = {"agent": s.agent_url, "cloud": s.sim_url if cloud == "simulator" else s.gateway_url}
        sent = 0
        for name, text in TEXTS[flavour].items():  # one after another on the same stack, as a developer runs them
            outcomes = await run(text, s.http, hosts)
            failed = [o for o in outcomes if not o.ok]
            assert not failed, f"{name}: {failed[0].request.title} {failed[0].url}: {failed[0].why}\n{failed[0].answer}"
            assert len(outcomes) == len(parse(text).requests)
            sent += len(outcomes)
            if name.startswith("03-"):  # registered with the virtual test card (IDs T...), not the physical card in the reader
                reg = next(o.answer for o in outcomes if o.url.endswith("/BasicData/Register"))
                assert reg["idCardNum"].startswith("T") and reg["cardSn"].startswith("00009"), reg
        assert sent >= 50
        st = s.store
        assert st.writes.get("Treatment/WriteCodeFee") == 2 and st.writes.get("Prescription/Write") == 1 and st.writes.get("SequelNumber/Next") == 2
        assert [(u.sType, u.hospitalId) for u in st.uploaded] == [("A2", "3501200000"), ("A1", "3501200000")]
        assert st.test_card_counter == 1 and not [p for p in st.patients_by_id.values() if p.testCardOf]  # applied, visited, given back
        p = st.patients_by_id["Z299999929"]
        assert [t.codes.get("mainCode") for t in p.treatments if t.hospitalId == "3501200000"][-1:] == ["J00"]


async def test_the_runner_fails_a_refused_call_and_an_unresolved_reference() -> None:
    text = TEXTS["rest-client"]["01-registration.http"]
    last = text[text.rindex("###"):]
    again = text + "\n" + last.replace("###", "### the same signature again", 1)  # 3245: a signature is good for one call
    async with running_stack(cards=CARDS) as s:
        outcomes = await run(again, s.http, {"agent": s.agent_url, "cloud": s.sim_url})
        assert [o.ok for o in outcomes][-2:] == [True, False] and outcomes[-1].answer["statusCode"] == 3245
        assert "statusCode 3245, expected one of ['0']" in outcomes[-1].why
        with pytest.raises(KeyError, match="sigNone"):
            await run(text.replace("sigRegister.response", "sigNone.response"), s.http, {"agent": s.agent_url, "cloud": s.sim_url})
