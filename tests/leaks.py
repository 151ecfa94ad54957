"""Unclosed sockets, transports and clients, found after the test that left them.

Python reports an unclosed resource (``ResourceWarning``) when the garbage collector frees it, which
for an object in a reference cycle is whenever a later collection runs: under ``filterwarnings =
error`` that failed whichever test happened to be running then (test_web_console, test_swagger in
two CI runs), never the one that leaked. So ``ResourceWarning`` is not an error (pyproject.toml);
instead, after each test's teardown, a full collection runs under a recording filter and what it
frees unclosed is put against that test: listed at the end of the run and in
``$NHIGW_ARTIFACTS/leaks.txt``, with where each object was allocated when tracing is on
(``NHIGW_LEAKS_TRACE=25`` starts tracemalloc with 25 frames, in this process only, not in the
services the tests start). ``NHIGW_LEAKS=fail`` makes each one an error of its test.

A resource that stays reachable past its test (held by something that lets go later) is still freed
later; it is then listed against the test during which it was freed, as it shows in pytest's warning
summary.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Leak:
    test: str
    message: str
    allocated: str  # tracemalloc's traceback, or "" when not tracing


FOUND: list[Leak] = []


def pytest_configure(config: pytest.Config) -> None:
    if frames := os.environ.get("NHIGW_LEAKS_TRACE"):
        tracemalloc.start(int(frames))


def collect(test: str) -> list[Leak]:
    """A full collection, each ResourceWarning it raises recorded against ``test``."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaks = []
    for w in seen:
        if not issubclass(w.category, ResourceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)  # not ours: as it came
            continue
        tb = tracemalloc.get_object_traceback(w.source) if w.source is not None and tracemalloc.is_tracing() else None
        leaks.append(Leak(test, str(w.message), "\n".join(tb.format()) if tb else ""))
    return leaks


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    result = yield  # the test's own fixtures are finalised first: what they close is not a leak
    leaks = collect(item.nodeid)
    FOUND.extend(leaks)
    if leaks and os.environ.get("NHIGW_LEAKS") == "fail":
        pytest.fail("unclosed after this test:\n" + "\n".join(f"{x.message}\n{x.allocated}" for x in leaks), pytrace=False)
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FOUND:
        return
    text = "\n".join(f"{x.test}: {x.message}" + (f"\n{x.allocated}" if x.allocated else "") for x in FOUND)
    terminalreporter.section(f"unclosed resources: {len(FOUND)} (not failures; NHIGW_LEAKS=fail makes them so)")
    terminalreporter.write_line(text)
    if out := os.environ.get("NHIGW_ARTIFACTS"):
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "leaks.txt").write_text(text + "\n", encoding="utf-8")
