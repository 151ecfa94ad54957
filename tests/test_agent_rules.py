"""The agent's pure decisions (``nhigw.agent.rules``), with vectors: the seed's state table and
the device choice of ``Initial``."""

from __future__ import annotations

from typing import Any

import pytest

from nhigw.agent.rules import NEEDS, DeviceChoice, States, check, choose_device, com_index, com_name, fallback_cloud
from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import HcState as HC
from nhigw.contracts.models import HpcState as HPC
from nhigw.contracts.models import SamState as SAM


def st(init: bool = True, sam: int = 2, hpc: int = 3, hc: int = 2) -> States:
    return States(init, SAM(sam), HPC(hpc), HC(hc))


def code_of(states: States, op: str) -> int:
    try:
        check(states, op)
    except StatusError as exc:
        return int(exc.code)
    return 0


# (states, op, the 6.0 code check answers; 0 = allowed)
CHECK_VECTORS = [
    (st(init=False), "server_date_time", Code.NOT_INITIALIZED),
    (st(), "server_date_time", 0),
    (st(sam=0), "sam_verify", Code.SAM_MODE1),
    (st(sam=1), "sam_verify", 0),
    (st(sam=1), "sam_logout", Code.SAM_MODE2),
    (st(sam=1), "sam_sign", Code.SAM_MODE2),
    (st(sam=2, hpc=1), "hpc_verify", Code.HPC_MODE2),
    (st(sam=2, hpc=0), "hpc_verify", Code.HPC_MODE2),
    (st(sam=2, hpc=2), "hpc_verify", 0),
    (st(sam=2, hpc=2), "hpc_sign", Code.HPC_MODE3),
    (st(sam=1, hpc=3), "hpc_sign", Code.SAM_MODE2),  # the SAM is checked before the HPC
    (st(sam=0, hpc=0, hc=1), "hc_basic", 0),  # a physical HC's public profile needs no SAM
    (st(sam=0, hpc=0, hc=0), "hc_basic", Code.NO_CARD),
    (st(hc=0), "hc_sign", Code.HC_MODE2),
    (st(hc=1), "hc_sign", Code.HC_MODE2),
    (st(hpc=2, hc=2), "hpchc_sign", Code.HPC_MODE3),
    (st(hpc=3, hc=1), "hc_organ_write", Code.HC_MODE2),
    (st(hpc=0, hc=0), "vhc_import", 0),
    (st(hc=1), "vhc_export", Code.HC_MODE2),
]


@pytest.mark.parametrize(("states", "op", "code"), CHECK_VECTORS)
def test_check_vectors(states: States, op: str, code: int) -> None:
    assert code_of(states, op) == code


def test_every_operation_passes_when_everything_is_ready_and_none_before_initial() -> None:
    for op, need in NEEDS.items():
        assert code_of(st(), op) == 0, op
        if need.init:
            assert code_of(st(init=False, sam=0, hpc=0, hc=0), op) == Code.NOT_INITIALIZED, op


def test_com_names() -> None:
    assert [com_index(n) for n in ("COM1", "com3", "COM0", "COM", "COMX1", "reader", "COM1x")] == [0, 2, -1, None, None, None, None]
    assert com_name(0) == "COM1" and com_index(com_name(7)) == 7


R = ["Reader A", "Reader B"]


# (name, readers, cloud ids, usable, last, default reader) -> the choice
CHOICE_VECTORS = [
    ((None, R, [], [], None, None), DeviceChoice(None, ("Reader A", "Reader B"))),  # a physical SAM in any reader
    (("COM2", R, [], [], None, None), DeviceChoice(None, ("Reader B",))),
    (("com1", R, [], [], None, None), DeviceChoice(None, ("Reader A",))),
    (("Reader B", R, [], [], None, None), DeviceChoice(None, ("Reader B",))),
    (("123456789012", R, [], [], None, None), DeviceChoice(None, ("Reader A", "Reader B"), want_sam="123456789012")),
    (("C1", R, ["C1"], ["C1"], None, "Reader B"), DeviceChoice("C1", ("Reader B",))),
    (("C1", [], ["C1"], [], None, None), DeviceChoice("C1", ())),  # not usable here: get() answers 9202
    ((None, R, ["C1", "C2"], ["C2"], None, None), DeviceChoice("C2", ("Reader A", "Reader B"))),  # first usable cloud SAM
    ((None, R, ["C1", "C2"], ["C1", "C2"], "C2", "gone"), DeviceChoice("C2", ("Reader A", "Reader B"))),  # the last device
    ((None, R, ["C1"], ["C1"], "Reader B", None), DeviceChoice(None, ("Reader A", "Reader B"))),  # last was a reader
    ((None, R, ["C1"], ["C1"], "123456789012", None), DeviceChoice(None, ("Reader A", "Reader B"))),  # last was a physical SAM
    ((None, [], ["C1"], ["C1"], "123456789012", None), DeviceChoice("C1", ())),  # ... but no reader at all
    ((None, R, ["C1"], ["C1"], "C9", None), DeviceChoice("C1", ("Reader A", "Reader B"))),  # last no longer here
]


@pytest.mark.parametrize(("args", "choice"), CHOICE_VECTORS)
def test_choose_device_vectors(args: tuple[Any, ...], choice: DeviceChoice) -> None:
    assert choose_device(*args) == choice


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("COM3", R, [], [], None, None), Code.NO_DEVICE),
        (("COM0", R, [], [], None, None), Code.NO_DEVICE),
        (("nosuch", R, [], [], None, None), Code.NO_READER_BY_NAME),
        ((None, [], [], [], None, None), Code.NO_READER),
        (("COM1", [], [], [], None, None), Code.NO_DEVICE),
        (("123", [], [], [], None, None), Code.NO_READER),
        ((None, [], ["C1"], [], None, None), Code.NO_READER),  # a cloud SAM sealed elsewhere is not a choice
    ],
)
def test_choose_device_refusals(args: tuple[Any, ...], code: int) -> None:
    with pytest.raises(StatusError) as exc:
        choose_device(*args)
    assert exc.value.code == code


def test_fallback_cloud_vectors() -> None:
    assert fallback_cloud(None, "123456789012", False, ["C1", "C2"]) == "C1"
    assert fallback_cloud(None, "123456789012", True, ["C1"]) is None  # the physical SAM is here
    assert fallback_cloud("COM1", "123456789012", False, ["C1"]) is None  # a name was given
    assert fallback_cloud(None, "Reader A", False, ["C1"]) is None  # the last device was a reader
    assert fallback_cloud(None, "123456789012", False, []) is None
    assert fallback_cloud(None, None, False, ["C1"]) is None
