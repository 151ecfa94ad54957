#!/usr/bin/env bash
# Set up what nhigw needs on a Debian/Ubuntu machine: a virtualenv in .venv with the
# package (editable) and, with --test, the system services the tests use (pcscd,
# vsmartcard-vpcd, redis-server) and the test dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_pkgs=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if [ $want_test = 1 ]; then
  need_cmd pcscd || apt_pkgs+=(pcscd)
  [ -f /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || apt_pkgs+=(vsmartcard-vpcd)
  need_cmd redis-server || apt_pkgs+=(redis-server)
  # Sentinel failover (tests/sentinel.py, tests/test_failover_drill.py): Debian's redis-sentinel.
  need_cmd redis-sentinel || apt_pkgs+=(redis-sentinel)
  # deployment checks (tests/test_deploy_*.py): systemd-analyze; unshare/mount and pgrep for the demo agent test
  need_cmd systemd-analyze || apt_pkgs+=(systemd)
  need_cmd unshare || apt_pkgs+=(util-linux)
  need_cmd pgrep || apt_pkgs+=(procps)
  # The web console tests drive Debian's chromium through its matching chromedriver (Selenium).
  [ -x /usr/bin/chromium ] || apt_pkgs+=(chromium)
  [ -x /usr/bin/chromedriver ] || apt_pkgs+=(chromium-driver)
  [ -d /usr/share/fonts/opentype/noto ] || apt_pkgs+=(fonts-noto-cjk)
  # `nhigw agent trust` fills NSS databases (Chromium, Firefox) with certutil (tests/test_agent_trust.py).
  need_cmd certutil || apt_pkgs+=(libnss3-tools)
  # Alert rules on a real Prometheus (promtool, tests/test_alerts.py); ATNA audit messages into a real rsyslog.
  need_cmd promtool || apt_pkgs+=(prometheus)
  need_cmd rsyslogd || apt_pkgs+=(rsyslog)
  # rsyslog's OpenSSL stream driver: the ATNA messages over TLS (RFC 5425) into that rsyslog.
  ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1 || apt_pkgs+=(rsyslog-openssl)
  # Socket system calls per request, gateway against the bare proxy (bench/syscalls.py).
  need_cmd strace || apt_pkgs+=(strace)
fi
# pyscard builds from source where no wheel fits: it needs the PC/SC headers and swig.
[ -f /usr/include/PCSC/winscard.h ] || apt_pkgs+=(libpcsclite-dev)
need_cmd swig || apt_pkgs+=(swig)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: apt-get install ${apt_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${apt_pkgs[*]} (run as root, or: sudo apt-get install ${apt_pkgs[*]})" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.nhigw-installed
extra=""
[ $want_test = 1 ] && extra="[test]"
if [ ! -f "$stamp$extra" ] || [ pyproject.toml -nt "$stamp$extra" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  mkdir -p var
  if ! .venv/bin/python -m pip install -q -e ".$extra" >var/pip-install.log 2>&1; then
    tail -40 var/pip-install.log >&2
    echo "bootstrap: pip install failed (full log: var/pip-install.log)" >&2
    exit 1
  fi
  .venv/bin/python -c 'import nhigw, aiohttp, smartcard, redis, pydantic, structlog, cryptography' || { echo "bootstrap: Python dependencies failed to install" >&2; exit 1; }
  touch "$stamp$extra"
fi
