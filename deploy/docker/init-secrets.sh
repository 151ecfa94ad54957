#!/bin/sh
# nhigw-init-secrets DIR: the compose stack's one-shot `secrets` service.
# Writes, once, the secrets the stack shares into DIR (a named volume):
#   redis_password  Redis `requirepass` (hex, URL-safe)
#   redis.conf      `requirepass ...` for redis-server (so the password is on no command line)
#   bus_key         the bus sealing key (`nhigw keygen`)
#   master_key      NHIGW_MASTER_KEY, the at-rest key of the services' sealed files
# A value given in the environment (REDIS_PASSWORD, NHIGW_BUS_KEY, NHIGW_MASTER_KEY, e.g.
# from an .env file beside docker-compose.yml) is used instead of a random one. Existing
# files are kept, so restarts and `docker compose up` again keep the same secrets.
set -eu
dir=${1:?usage: nhigw-init-secrets DIR}
umask 022   # the files are read by the redis user and the nhigw user; only our containers mount DIR
mkdir -p "$dir"

rand_hex() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }

put() {  # put NAME VALUE: write DIR/NAME unless it exists
  if [ ! -s "$dir/$1" ]; then
    printf '%s' "$2" > "$dir/$1.tmp" && mv "$dir/$1.tmp" "$dir/$1"
    echo "nhigw-init-secrets: wrote $1"
  fi
}

put redis_password "${REDIS_PASSWORD:-$(rand_hex)}"
put bus_key "${NHIGW_BUS_KEY:-$(nhigw keygen)}"
put master_key "${NHIGW_MASTER_KEY:-$(rand_hex)}"
put redis.conf "requirepass $(cat "$dir/redis_password")
"
echo "nhigw-init-secrets: ready in $dir"
