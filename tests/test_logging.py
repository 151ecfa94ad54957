"""What the services' log chain (``nhigw.common.logging.processors``) prints when a job fails.

A job whose upstream call dies with an error quoting the signed request (a third-party error
that echoes what it was given) is logged as ``job_failed`` with its traceback: as one JSON line
and as a console line, both rendered by the real chain from the real gateway's ``log.exception``.
Neither carries the signature or the patient's national ID in full, nor any frame's locals (the
job, its signed body).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator

import pytest
import structlog

from nhigw.common.logging import ID_RE, processors
from nhigw.gateway.upstream import Transport, UpstreamRequest, UpstreamResponse
from tests.helpers import eventually
from tests.stack import running_stack


class EchoingCrash(Transport):
    """Every call dies with an error that quotes the whole signed body it was given."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, str]] = []

    async def send(self, base_url: str, req: UpstreamRequest) -> UpstreamResponse:
        self.bodies.append(json.loads(req.body))
        raise RuntimeError(f"worker died mid-request: {req.body.decode()}")

    async def close(self) -> None:
        pass


@contextlib.contextmanager
def rendered(*, json_lines: bool) -> Iterator[io.StringIO]:
    """Everything logged in the block, as the services' chain renders it."""
    saved = structlog.get_config()
    out = io.StringIO()
    structlog.configure(processors=processors(json=json_lines), logger_factory=structlog.PrintLoggerFactory(out))
    try:
        yield out
    finally:
        structlog.configure(**saved)


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "console"])
async def test_a_job_failed_line_carries_no_full_signature_id_or_locals(json_lines: bool) -> None:
    crash = EchoingCrash()
    with rendered(json_lines=json_lines) as out:
        async with running_stack(transport=crash, max_deliveries=5) as s:
            await s.ready()
            await s.call("POST", s.gateway_url + "/api/v1/BasicData/Register", json={}, headers={"X-Workstation": "ws-01", "X-Deadline-Ms": "300"})
            assert await eventually(lambda: "job_failed" in out.getvalue(), timeout_s=10)
    text = out.getvalue()
    body = crash.bodies[0]
    signature, patient = body["signature"], body["hcIdNo"]
    assert ID_RE.fullmatch(patient), body  # the patient's national ID, as the agent read it from the card
    assert len(signature) > 100  # a real SAM signature (RSA), not a placeholder
    if json_lines:
        event = json.loads(next(ln for ln in text.splitlines() if '"job_failed"' in ln))
        assert event["level"] == "error"
        failed = event["exception"]
    else:
        failed = text[text.index("job_failed"):]
    assert "Traceback (most recent call last)" in failed and "RuntimeError: worker died mid-request" in failed
    assert signature[:8] + "…" in failed  # cut where the error quoted it
    assert signature[8:40] not in text
    assert patient not in text
    for value in body.values():
        if len(value) > 12:
            assert value not in text, value
    assert "locals" not in text and "│" not in text and "self = " not in text  # no frame's variables
