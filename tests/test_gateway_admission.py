"""The gate's pure decisions (``nhigw.gateway.admission``), with vectors; the HTTP paths are in test_gateway_*.py."""

from __future__ import annotations

import pytest

from nhigw.contracts.codes import Code, StatusError
from nhigw.gateway.admission import TokenBucket, deadline_s, his_may_call, idempotency_key


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, 30.0), ("1500", 1.5), ("0", 0.05), ("-5", 0.05), ("999999999", 300.0), ("300000", 300.0)],
)
def test_deadline_is_clamped_between_50_ms_and_the_maximum(header: str | None, expected: float) -> None:
    headers = {} if header is None else {"X-Deadline-Ms": header}
    assert deadline_s(headers, 30.0, 300.0) == expected


@pytest.mark.parametrize("bad", ["1.5", "soon", ""])
def test_a_deadline_not_an_integer_is_refused(bad: str) -> None:
    with pytest.raises(StatusError) as e:
        deadline_s({"X-Deadline-Ms": bad}, 30.0, 300.0)
    assert e.value.code == Code.PARAM_VALUE


def test_idempotency_key_is_kept_made_or_refused() -> None:
    assert idempotency_key({"Idempotency-Key": "order-17/a"}) == "order-17/a"
    made = idempotency_key({})
    assert len(made) == 32 and made != idempotency_key({})
    for bad in ("a b", "x" * 201, "鍵"):
        with pytest.raises(StatusError) as e:
            idempotency_key({"Idempotency-Key": bad})
        assert e.value.code == Code.PARAM_VALUE


def test_his_calls_and_operator_calls() -> None:
    assert his_may_call("POST", "hc/v1/Signature/HpcHc") and his_may_call("GET", "common/v1/Status")
    assert not his_may_call("PUT", "common/v1/Settings/Cors") and not his_may_call("DELETE", "common/v1/Record")
    assert not his_may_call("GET", "hc/v1/signature/hpchc")  # exact paths only


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    b = TokenBucket(2.0, 3.0, clock=lambda: now[0])
    assert [b.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one token back
    assert b.take() and not b.take()
    now[0] = 100.0  # never more than the burst
    assert [b.take() for _ in range(4)] == [True, True, True, False]
