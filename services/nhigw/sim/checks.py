"""The signature checks of the request being served, noted for the developer console (``console/``).

``auth.check_signature``, ``dc.check_sam_signed``, the DC's SAM verification and the upload host
call ``note`` for each check they pass and ``refuse`` for the one that fails; the console's
middleware collects them per request (a context variable, so concurrent requests keep theirs
apart). Outside a recorded request both only return.
"""

from __future__ import annotations

from contextvars import ContextVar

from nhigw.contracts.codes import StatusError

CHECKS: ContextVar[list[tuple[str, bool, str]] | None] = ContextVar("nhigw_sim_checks", default=None)  # (name, ok, detail)


def note(name: str, ok: bool, detail: str = "") -> None:
    """Record one check of the request being served (a no-op outside a recorded request)."""
    checks = CHECKS.get()
    if checks is not None:
        checks.append((name, ok, detail))


def refuse(name: str, err: StatusError) -> StatusError:
    """Note ``name`` as failed with ``err``'s code and reason; returns ``err`` for ``raise``."""
    note(name, False, str(err))
    return err
