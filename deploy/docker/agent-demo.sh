#!/usr/bin/env bash
# nhigw-agent-demo: the demo agent container — pcscd with the vpcd driver, virtual cards
# (`nhigw vcard`) in its readers, and `nhigw agent --pcsc` on top, all as the unprivileged
# nhigw user. The agent speaks to the cards through the real PC/SC stack, exactly as a
# workstation agent speaks to a real reader; only the cards are software.
#
# Demo and test only: vpcd listens on every interface of the container (its ports are
# not published). A clinic workstation runs `nhigw agent` on its host (deploy/README.md).
#
# Environment (all optional):
#   NHIGW_VPCD_BASE_PORT   vpcd port of slot 0 (default 35963); two readers, four slots
#   NHIGW_VCARD_PORT       vcard control API on 127.0.0.1 (default 8069)
#   NHIGW_VCARD_SLOTS      space-separated N=kind:id (default: SAM, HC 測試十, HPC)
#   NHIGW_SIM_URL          simulator where the virtual SAM's key is registered
#   NHIGW_RUN_DIR          where the generated reader configuration goes (default a temp dir)
#   PCSCD                  the pcscd binary (default: pcscd on PATH, else /usr/sbin/pcscd)
#   NHIGW_ENROL_TOKEN      one-time enrolment token (the entry point reads NHIGW_ENROL_TOKEN_FILE);
#                          used on the first start only, see below
# Arguments are passed to `nhigw agent` (after --pcsc --auto-init --auto-verify-sam).
set -euo pipefail

base_port=${NHIGW_VPCD_BASE_PORT:-35963}
vcard_port=${NHIGW_VCARD_PORT:-8069}
slots=${NHIGW_VCARD_SLOTS:-"0=sam:001000000103 1=hc:000073898381 2=hpc:000000329470"}
pcscd=${PCSCD:-$(command -v pcscd || echo /usr/sbin/pcscd)}
vpcd_lib=${NHIGW_VPCD_LIB:-/usr/lib/pcsc/drivers/serial/libifdvpcd.so}
run_dir=${NHIGW_RUN_DIR:-$(mktemp -d -t nhigw-demo.XXXXXX)}

# Two vpcd readers = four slots. The second reader loads a *copy* of the driver: two
# readers on one copy share its slot table and neither sees a card (pcsc-lite 1.9.9).
mkdir -p "$run_dir/reader.conf.d"
cp "$vpcd_lib" "$run_dir/libifdvpcd-b.so"
printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x%X\nLIBPATH %s\nCHANNELID 0x%X\n' \
  "$base_port" "$vpcd_lib" "$base_port" > "$run_dir/reader.conf.d/vpcd-a"
printf 'FRIENDLYNAME "Virtual PCD B"\nDEVICENAME /dev/null:0x%X\nLIBPATH %s\nCHANNELID 0x%X\n' \
  "$((base_port + 2))" "$run_dir/libifdvpcd-b.so" "$((base_port + 2))" > "$run_dir/reader.conf.d/vpcd-b"

pids=()
stop_all() {
  trap - TERM INT
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait || true
}
trap 'stop_all; exit 0' TERM INT

wait_until() {  # wait_until SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "nhigw-agent-demo: $what did not come up" >&2; stop_all; exit 1; fi
    sleep 0.1
  done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
slots_filled() {  # the vcard service has inserted every card
  python3 -c 'import json, sys, urllib.request
got = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))["slots"]
sys.exit(0 if len(got) >= int(sys.argv[2]) else 1)' "http://127.0.0.1:$vcard_port/slots" "$1"
}

"$pcscd" --foreground --config "$run_dir/reader.conf.d" &
pids+=($!)
# pcscd is ready once vpcd listens on its four ports.
for p in "$base_port" "$((base_port + 1))" "$((base_port + 2))" "$((base_port + 3))"; do
  wait_until 15 "pcscd (vpcd port $p)" port_open "$p"
done

slot_args=()
n_slots=0
for s in $slots; do slot_args+=(--slot "$s"); n_slots=$((n_slots + 1)); done
nhigw vcard --port "$vcard_port" --base-port "$base_port" ${NHIGW_SIM_URL:+--sim "$NHIGW_SIM_URL"} "${slot_args[@]}" &
pids+=($!)
wait_until 30 "nhigw vcard (cards in the readers)" slots_filled "$n_slots"

# Enrolment: the token is for the first start. Once the agent keeps its identity (sealed in
# its data directory, nhigw.bus.enrol.identity_path) a restart must not spend a token again.
identity="${NHIGW_DATA_DIR:-$HOME/.local/share/nhigw}/agent/bus-identity.${NHIGW_BUS_PREFIX:-nhigw}.sealed"
if [ -s "$identity" ]; then
  unset NHIGW_ENROL_TOKEN
fi

nhigw agent --pcsc --auto-init --auto-verify-sam "$@" &
pids+=($!)

# One part exits: stop the others and exit with its status (the container restarts).
set +e
wait -n "${pids[@]}"
rc=$?
echo "nhigw-agent-demo: a process exited ($rc); stopping" >&2
stop_all
exit $((rc == 0 ? 1 : rc))
