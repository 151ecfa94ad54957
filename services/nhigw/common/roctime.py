"""Taiwan time and ROC dates, in one place for every service.

The NHI's clocks, ROC dates (``yyyMMdd``) and date-times (``yyyMMddHHmmss``) are in UTC+8
(no DST), whatever the host's zone.
"""

from __future__ import annotations

import datetime as dt

TAIWAN = dt.timezone(dt.timedelta(hours=8), "Asia/Taipei")


def taiwan_now() -> dt.datetime:
    """Now in Taiwan, as a naive date-time (ROC strings carry no zone)."""
    return dt.datetime.now(TAIWAN).replace(tzinfo=None)


def roc_date(t: dt.datetime) -> str:
    return f"{t.year - 1911:03d}{t:%m%d}"


def roc_datetime(t: dt.datetime) -> str:
    return f"{t.year - 1911:03d}{t:%m%d%H%M%S}"


def parse_roc(s: str) -> dt.datetime:
    """``yyyMMdd`` or ``yyyMMddHHmmss`` (extra trailing digits such as milliseconds are ignored)."""
    year = int(s[:3]) + 1911
    rest = s[3:13].ljust(10, "0")
    return dt.datetime(year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), int(rest[8:10]))


def roc_now() -> str:
    """``yyyMMddHHmmss`` in ROC years, Taiwan time (the cloud's date-time format)."""
    return roc_datetime(taiwan_now())
