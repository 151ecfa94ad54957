"""Flags over environment, resolved once by the CLI (``nhigw.cli.ENVIRONMENT``), and the gateway's
settings built from what was given (the rest: ``GatewaySettings``' own defaults)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from nhigw.cli import parser, resolve_environment
from nhigw.gateway.cli import gateway_settings
from nhigw.gateway.queue import MAX_DELIVERIES


def settings(argv: list[str]) -> argparse.Namespace:
    args = parser().parse_args(argv)
    resolve_environment(args)
    return args


def test_a_flag_beats_its_variable_and_the_variable_beats_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NHIGW_SITE", "NHIGW_BUS_PREFIX", "NHIGW_LOG_LEVEL", "NHIGW_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    a = settings(["gateway"])
    assert (a.site, a.bus_prefix, a.log_level) == (None, "nhigw", "INFO") and a.data_dir.endswith("/.local/share/nhigw")
    monkeypatch.setenv("NHIGW_SITE", "north")
    monkeypatch.setenv("NHIGW_BUS_PREFIX", "clinic-a")
    monkeypatch.setenv("NHIGW_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("NHIGW_DATA_DIR", "/srv/nhigw")
    a = settings(["gateway"])
    assert (a.site, a.bus_prefix, a.log_level, a.data_dir) == ("north", "clinic-a", "DEBUG", "/srv/nhigw")
    a = settings(["--log-level", "ERROR", "gateway", "--site", "south", "--bus-prefix", "b", "--data-dir", "/d"])
    assert (a.site, a.bus_prefix, a.log_level, a.data_dir) == ("south", "b", "ERROR", "/d")


def test_the_simulators_admin_api_from_its_flag_or_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, want in (("", False), ("0", False), ("1", True)):
        monkeypatch.setenv("NHIGW_SIM_ADMIN", value)
        assert settings(["sim"]).admin is want
        assert settings(["sim", "--admin"]).admin is True


def test_a_command_that_sets_a_value_itself_does_not_read_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NHIGW_CLOUD_URL", "https://cloud.example")
    monkeypatch.setenv("NHIGW_WORKSTATION", "ws-09")
    assert (settings(["agent"]).cloud, settings(["agent"]).workstation) == ("https://cloud.example", "ws-09")
    up = settings(["up"])
    assert (up.cloud, up.workstation) == (None, None)  # `nhigw up` points its agent at its own simulator, ws-01


def test_a_malformed_variable_stops_the_command_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NHIGW_TLS_CHECK_S", "soon")
    with pytest.raises(SystemExit, match="NHIGW_TLS_CHECK_S"):
        settings(["agent"])


def test_the_gateway_takes_the_flags_given_and_its_own_defaults_for_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NHIGW_SITE", raising=False)
    built = gateway_settings(settings(["gateway"]), cloud="http://127.0.0.1:1", data_dir=tmp_path, audit_file=False)
    assert (built.max_deliveries, built.site, built.claim_idle_s, built.upstream.rate_per_s) == (MAX_DELIVERIES, "clinic", 10.0, 50.0)
    assert gateway_settings(settings(["up"]), cloud="http://127.0.0.1:1", data_dir=tmp_path, audit_file=True).max_deliveries == MAX_DELIVERIES
    args = settings(["gateway", "--max-deliveries", "5", "--site", "x", "--rate-per-s", "7", "--replica-wait", "0"])
    built = gateway_settings(args, cloud="http://127.0.0.1:1", data_dir=tmp_path, audit_file=False)
    assert (built.max_deliveries, built.site, built.upstream.rate_per_s, built.replica_wait) == (5, "x", 7.0, 0)
