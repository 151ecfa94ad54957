"""Time helpers of the simulator (ROC dates)."""

from __future__ import annotations

import datetime as dt


def roc_now() -> str:
    """``yyyMMddHHmmss`` in ROC years (the cloud's date-time format)."""
    now = dt.datetime.now()
    return f"{now.year - 1911:03d}{now:%m%d%H%M%S}"
