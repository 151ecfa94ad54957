#!/bin/sh
# nhigw-init-secrets DIR: the compose stack's one-shot `secrets` service.
# Writes, once, each role's secrets into its own directory (its own volume), so that every
# container sees only its own:
#   DIR/redis/redis.conf          for redis-server (so no password is on a command line):
#                                 `requirepass` (the default user: gateways) and the ACL user
#                                 `agent`, which may only PUBLISH/SUBSCRIBE on the agents'
#                                 channels (nhigw.contracts.buskeys) and read no key
#                                 (and `masterauth`: a replica, or a primary the sentinels
#                                 turned into one, logs in to its primary with it)
#   DIR/redis/sentinel.conf       the first config of each redis-sentinel (profile `sentinel`),
#                                 which copies it once and then keeps its own (Sentinel rewrites it)
#   DIR/gateway/redis_password    the Redis password of the default user (hex, URL-safe)
#   DIR/gateway/bus_key           the gateway key (`nhigw keygen`): gateway replicas only
#   DIR/gateway/master_key        NHIGW_MASTER_KEY, the at-rest key of sealed files
#   DIR/gateway/clients.json      HIS clients (API key hashes), with the client `demo-his`
#   DIR/gateway/his_api_key       demo-his's API key, for the README's curl (demo only)
#   DIR/compat/his_api_key        the compat service's HIS key (client ws-01-compat, ws-01 only)
#   DIR/agent/redis_password      the password of the Redis user `agent`
#   DIR/agent/master_key          the agent's own at-rest key (keeps its enrolment across
#                                 container re-creation); the agent never sees the gateway key
# REDIS_PASSWORD, REDIS_AGENT_PASSWORD, NHIGW_BUS_KEY and NHIGW_MASTER_KEY from the environment (e.g. an .env file
# beside docker-compose.yml) are used instead of random values. Existing files are kept, so
# `docker compose up` again keeps the same secrets.
set -eu
dir=${1:?usage: nhigw-init-secrets DIR}
umask 027
mkdir -p "$dir/redis" "$dir/gateway" "$dir/agent" "$dir/compat"

rand_hex() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }

put() {  # put FILE VALUE: write FILE unless it exists
  if [ ! -s "$1" ]; then
    printf '%s' "$2" > "$1.tmp" && mv "$1.tmp" "$1"
    echo "nhigw-init-secrets: wrote $1"
  fi
}

put "$dir/gateway/redis_password" "${REDIS_PASSWORD:-$(rand_hex)}"
password=$(cat "$dir/gateway/redis_password")
put "$dir/agent/redis_password" "${REDIS_AGENT_PASSWORD:-$(rand_hex)}"
agent_password=$(cat "$dir/agent/redis_password")
put "$dir/gateway/bus_key" "${NHIGW_BUS_KEY:-$(nhigw keygen)}"
put "$dir/gateway/master_key" "${NHIGW_MASTER_KEY:-$(rand_hex)}"
put "$dir/agent/master_key" "$(rand_hex)"
# redis-server runs as its own user (uid 999) in the redis image: its file is world-readable
# inside a volume that only the redis and secrets containers mount.
# The agent's channels, named by the code (nhigw.contracts.buskeys; the bus's keepalive channel).
channels=$(python3 -c 'import sys
from nhigw.contracts.buskeys import BusKeys
k = BusKeys(sys.argv[1])
print(" ".join("&" + c for c in ("__nhigw_keepalive__", k.presence, k.enrol, k.enrol_reply("*"), k.replies("*"), k.calls("*"), k.sessions("*"))))' "${NHIGW_BUS_PREFIX:-nhigw}")
put "$dir/redis/redis.conf" "requirepass $password
masterauth $password
user agent on >$agent_password resetkeys resetchannels $channels -@all +publish +subscribe +unsubscribe +ping
"
put "$dir/redis/sentinel.conf" "port 26379
sentinel resolve-hostnames yes
sentinel monitor nhigw redis 6379 2
sentinel auth-pass nhigw $password
sentinel down-after-milliseconds nhigw 5000
sentinel failover-timeout nhigw 60000
sentinel parallel-syncs nhigw 1
"
chmod 0644 "$dir/redis/redis.conf" "$dir/redis/sentinel.conf"
chmod 0755 "$dir/redis"
if [ ! -s "$dir/gateway/clients.json" ]; then
  put "$dir/gateway/his_api_key" "$(nhigw gateway add-client --clients "$dir/gateway/clients.json" --name demo-his --workstations '*' --ops --all-hospitals)"
  put "$dir/compat/his_api_key" "$(nhigw gateway add-client --clients "$dir/gateway/clients.json" --name ws-01-compat --workstations ws-01)"
fi
echo "nhigw-init-secrets: ready in $dir"
