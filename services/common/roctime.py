"""Taiwan time: the NHI's clocks, ROC dates and date-times are in UTC+8 (no DST), whatever the host's zone."""

from __future__ import annotations

import datetime as dt

TAIWAN = dt.timezone(dt.timedelta(hours=8), "Asia/Taipei")


def taiwan_now() -> dt.datetime:
    """Now in Taiwan, as a naive date-time (ROC strings carry no zone)."""
    return dt.datetime.now(TAIWAN).replace(tzinfo=None)
