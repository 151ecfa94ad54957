"""The agent's pure decisions, apart from card I/O (``nhigw.agent.core`` does the I/O):

- the seed's state table: which states each operation needs (``NEEDS``) and ``check(states, op)``,
  which raises the matching 6.0 code;
- the device choice of ``Initial`` (``choose_device``, then ``fallback_cloud`` once the readers
  were scanned), and ``COMn`` names (``com_index``), parsed here only.

Each is tested with vectors in ``tests/test_agent_rules.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nhigw.contracts.codes import Code, StatusError
from nhigw.contracts.models import HcState, HpcState, SamState, SignatureKind

__all__ = ["NEEDS", "SIGN_NEED", "DeviceChoice", "Need", "States", "check", "choose_device", "com_index", "com_name", "fallback_cloud"]


# --------------------------------------------------------------------------- the seed's state table


@dataclass(frozen=True)
class Need:
    """The states a call needs: the columns 初始化 / SAM / HCA / HC of the seed's tables."""

    init: bool = True
    sam: SamState | None = None
    hpc: HpcState | None = None
    hc: HcState | None = None


_S2 = SamState.VERIFIED
NEEDS: dict[str, Need] = {
    "server_date_time": Need(),
    "sam_verify": Need(sam=SamState.PRESENT),
    "sam_logout": Need(sam=_S2),
    "sam_basic": Need(sam=SamState.PRESENT),
    "sam_sign": Need(sam=_S2),
    "hpc_verify": Need(sam=_S2, hpc=HpcState.READY),
    "hpc_mobile": Need(sam=_S2),
    "hpc_basic": Need(sam=_S2, hpc=HpcState.VERIFIED),
    "hpc_change_pin": Need(sam=_S2, hpc=HpcState.VERIFIED),
    "hpc_unlock": Need(sam=_S2, hpc=HpcState.READY),
    "hpc_sign": Need(sam=_S2, hpc=HpcState.VERIFIED),
    "hpc_logout": Need(sam=_S2, hpc=HpcState.VERIFIED),
    # Choice (the seed's console table asks for SAM 2 here): a physical HC's public basic profile
    # needs no SAM, as real cards allow (SELECT + READ 00 CA 11 00); a virtual HC only
    # reaches a state at all through verification, which needs SAM 2.
    "hc_basic": Need(hc=HcState.PRESENT),
    "hc_pin": Need(sam=_S2, hc=HcState.READY),
    "hc_sign": Need(sam=_S2, hc=HcState.READY),
    "hpchc_sign": Need(sam=_S2, hpc=HpcState.VERIFIED, hc=HcState.READY),
    "hc_logout": Need(sam=_S2),
    "hc_organ_read": Need(sam=_S2, hc=HcState.READY),
    "hc_organ_write": Need(sam=_S2, hpc=HpcState.VERIFIED, hc=HcState.READY),
    "vhc_verify": Need(sam=_S2),
    "vhc_read": Need(sam=_S2),
    "vhc_export": Need(sam=_S2, hc=HcState.READY),
    "vhc_import": Need(sam=_S2),
}
SIGN_NEED = {SignatureKind.SAM: "sam_sign", SignatureKind.HPC: "hpc_sign", SignatureKind.HC: "hc_sign", SignatureKind.HPCHC: "hpchc_sign"}


@dataclass(frozen=True)
class States:
    """What ``check`` looks at: initialised or not, and the SAM / HPC / HC states."""

    initialized: bool
    sam: SamState
    hpc: HpcState
    hc: HcState


def check(states: States, op: str) -> None:
    """Check the states ``op`` needs (``NEEDS``); raise the matching 6.0 code."""
    need = NEEDS[op]
    if need.init and not states.initialized:
        raise StatusError(Code.NOT_INITIALIZED)
    if need.sam is not None and states.sam < need.sam:
        code = Code.SAM_MODE2 if need.sam == SamState.VERIFIED else Code.SAM_MODE1
        raise StatusError(code, f"SAM state is {int(states.sam)}, needs {int(need.sam)}")
    if need.hpc is not None and states.hpc < need.hpc:
        code = {HpcState.PRESENT: Code.HPC_MODE1, HpcState.READY: Code.HPC_MODE2}.get(need.hpc, Code.HPC_MODE3)
        raise StatusError(code, f"HPC state is {int(states.hpc)}, needs {int(need.hpc)}")
    if need.hc is not None and states.hc < need.hc:
        if states.hc == HcState.NONE:
            raise StatusError(Code.NO_CARD if need.hc == HcState.PRESENT else Code.HC_MODE2, "no health card inserted")
        raise StatusError(Code.HC_MODE2, f"HC state is {int(states.hc)}, needs {int(need.hc)}")


# --------------------------------------------------------------------------- Initial's device choice


def com_name(index: int) -> str:
    """The ``COMn`` name of the reader at 0-based ``index`` (the n-th PC/SC reader)."""
    return f"COM{index + 1}"


def com_index(name: str) -> int | None:
    """``COMn`` (any case) -> the 0-based reader index ``n - 1``; None when ``name`` is no ``COMn``."""
    if name.upper().startswith("COM") and name[3:].isdigit():
        return int(name[3:]) - 1
    return None


@dataclass(frozen=True)
class DeviceChoice:
    """``cloud``: the cloud SAM to use; ``readers``: the readers chosen for the physical cards;
    ``want_sam``: a physical SAM id asked for by name (checked after the scan)."""

    cloud: str | None
    readers: tuple[str, ...]
    want_sam: str | None = None


def choose_device(name: str | None, readers: list[str], cloud_ids: list[str], usable: list[str], last: str | None, default_reader: str | None) -> DeviceChoice:
    """The device ``Initial(name)`` uses, before any card is read.

    ``readers``: the PC/SC readers; ``cloud_ids``: the imported cloud SAMs, ``usable`` those
    that open on this host; ``last``: the last device initialised; ``default_reader``: the
    settings' reader for the physical cards beside a cloud SAM. A name is a cloud SAM id,
    ``COMn``, a reader name or a physical SAM id (digits); without one: the last device, then
    the first usable cloud SAM, then a physical SAM in any reader (seed: 最後連接裝置 / 雲端安全模組 /
    實體安全模組). Raises 1002 for a ``COMn`` past the readers, 1600 for a name that names nothing, 1101 without readers.
    """
    cloud: str | None = None
    chosen = list(readers)
    want_sam: str | None = None
    if name:
        idx = com_index(name)
        if name in cloud_ids:
            cloud = name
        elif idx is not None:
            if not 0 <= idx < len(readers):
                raise StatusError(Code.NO_DEVICE, f"{name} does not exist ({len(readers)} readers)")
            chosen = [readers[idx]]
        elif name in readers:
            chosen = [name]
        elif name.isdigit():
            want_sam = name
        else:
            raise StatusError(Code.NO_READER_BY_NAME, f"no reader named {name!r}")
    elif last and last in usable:
        cloud = last
    elif last and (last in readers or (last.isdigit() and readers)):
        pass  # a reader, or a physical SAM: decided after the scan (fallback_cloud)
    elif usable:
        cloud = usable[0]
    if cloud is not None:
        chosen = [default_reader] if default_reader and default_reader in readers else list(readers)
    elif not readers:
        raise StatusError(Code.NO_READER, "no PC/SC reader found")
    return DeviceChoice(cloud, tuple(chosen), want_sam)


def fallback_cloud(name: str | None, last: str | None, physical_sam_found: bool, usable: list[str]) -> str | None:
    """After the scan, without a name: the last device was a physical SAM that is not here, so the
    first usable cloud SAM is taken (None: keep what the scan found)."""
    if not name and last and last.isdigit() and not physical_sam_found and usable:
        return usable[0]
    return None
