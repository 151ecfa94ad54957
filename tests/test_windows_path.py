"""The agent's path on Windows: no POSIX-only facility it cannot do without (CI runs on Linux only,
so these read the source and drive the Windows branches through their seams; README "Platforms")."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
from pathlib import Path

from nhigw.common import serve
from tests.test_imports import PKG, graph, module_name

# What a workstation runs: the agent (own readers or bridged to the official component), its
# console, trust and SAM commands, compat, and the server runner they share.
AGENT_ROOTS = {"nhigw.agent.app", "nhigw.agent.buslink", "nhigw.agent.bridge", "nhigw.agent.sessions", "nhigw.agent.trust",
               "nhigw.agent.samcli", "nhigw.compat.app", "nhigw.compat.cli", "nhigw.common.serve"}
POSIX_MODULES = {"fcntl", "pwd", "grp", "termios", "tty", "pty", "resource", "posix", "syslog"}
POSIX_CALLS = {"getuid", "geteuid", "getgid", "fork", "chown", "setsid", "killpg", "getpgid", "mkfifo"}


def agent_path() -> set[str]:
    g = graph()
    seen, todo = set(), list(AGENT_ROOTS)
    while todo:
        m = todo.pop()
        if m in seen or m not in g:
            continue
        seen.add(m)
        todo.extend(g[m])
    return seen


def unguarded(path: Path) -> list[str]:
    """POSIX-only imports outside ``try/except ImportError``, and POSIX-only ``os`` calls in a module that never asks ``hasattr(os, ...)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    asks = {n.args[1].value for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "hasattr"
            and len(n.args) == 2 and isinstance(n.args[1], ast.Constant)}
    out = []
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        out += [f"{path.name}:{node.lineno} import {n}" for n in names if n.split(".")[0] in POSIX_MODULES and id(node) not in guarded]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in POSIX_CALLS and node.attr not in asks:
            out.append(f"{path.name}:{node.lineno} os.{node.attr}")
    return out


def test_unguarded_finds_what_it_looks_for(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import os\nimport fcntl\ntry:\n    import pwd\nexcept ImportError:\n    pwd = None\nos.getuid()\nif hasattr(os, 'geteuid'):\n    os.geteuid()\n")
    assert unguarded(f) == ["m.py:2 import fcntl", "m.py:7 os.getuid"]


def test_nothing_on_the_agents_path_needs_a_posix_only_facility() -> None:
    mods = agent_path()
    assert {"nhigw.agent.core", "nhigw.common.secretbox", "nhigw.common.tls", "nhigw.bus.enrol"} <= mods  # the closure is really followed
    files = {module_name(f): f for f in PKG.rglob("*.py")}
    found = [hit for m in sorted(mods) for hit in unguarded(files[m])]
    assert found == []


async def test_stop_signals_without_loop_handlers_as_on_windows(monkeypatch) -> None:
    """Windows' event loops have no ``add_signal_handler``: the stop event is set from ``signal.signal`` instead."""
    loop = asyncio.get_running_loop()

    def refuse(*_a: object) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", refuse)
    before = signal.getsignal(signal.SIGINT)
    stop = asyncio.Event()
    restore = serve._on_stop_signals(loop, stop)
    try:
        assert signal.getsignal(signal.SIGINT) is not before
        os.kill(os.getpid(), signal.SIGINT)  # what NSSM's / WinSW's Ctrl+C becomes in Python
        await asyncio.wait_for(stop.wait(), 5)
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_winsw_service_definition_runs_an_agent_nhigw_accepts() -> None:
    """deploy/windows/nhigw-agent.xml as install-agent.ps1 fills it, both modes: XML that parses, a command line nhigw accepts."""
    import shlex
    import xml.etree.ElementTree as ET

    from nhigw.cli import parser

    root = Path(__file__).resolve().parents[1] / "deploy" / "windows"
    template = (root / "nhigw-agent.xml").read_text(encoding="utf-8")
    script = (root / "install-agent.ps1").read_text(encoding="utf-8")
    for placeholder in ("@VENV@", "@DATA@", "@WORKSTATION@", "@MODE@", "@DEPEND@", "@CLOUD@", "@CLOUDCA@"):
        assert placeholder in template and f'"{placeholder}"' in script  # every one the template has, the script fills
    for mode, depend in (("--pcsc", "<depend>SCardSvr</depend>"), ('--component https://localhost:5066 --component-ca "C:/NHI/cshis6.crt"', "")):
        xml = (template.replace("@VENV@", "C:/nhigw/venv").replace("@DATA@", "C:/ProgramData/nhigw").replace("@WORKSTATION@", "ws-03")
               .replace("@MODE@", mode).replace("@DEPEND@", depend).replace("@CLOUD@", "https://medvpndc.nhi.gov.tw").replace("@CLOUDCA@", ""))
        svc = ET.fromstring(xml)
        args = shlex.split(svc.findtext("arguments") or "")
        ns = parser().parse_args(args)
        assert ns.cmd == "agent" and ns.workstation == "ws-03" and ns.host == "127.0.0.1"
        assert (svc.findtext("depend") == "SCardSvr") == (mode == "--pcsc")
        env = {e.get("name"): e.get("value") for e in svc.findall("env")}
        assert {"NHIGW_REDIS_URL_FILE", "NHIGW_ENROL_TOKEN_FILE", "NHIGW_CLOUD_URL"} <= set(env) and "NHIGW_MASTER_KEY" not in xml
