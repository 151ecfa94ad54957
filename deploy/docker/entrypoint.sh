#!/bin/sh
# nhigw-entrypoint: the image's ENTRYPOINT. Runs `nhigw "$@"` (or, when the first argument
# is one of the image's nhigw-* helpers, that helper) after two conveniences
# for secrets, so that none has to sit in the compose file, a manifest or `docker inspect`:
#
#  - NHIGW_<NAME>_FILE=<path>  exports NHIGW_<NAME> with the file's content (the Docker /
#    Kubernetes secrets-as-files convention), e.g. NHIGW_BUS_KEY_FILE=/run/nhigw-secrets/bus_key;
#  - NHIGW_REDIS_PASSWORD (or its _FILE) is put into NHIGW_REDIS_URL when that URL carries
#    no password (redis://redis:6379/0 -> redis://:<password>@redis:6379/0, and with an ACL
#    user redis://agent@redis:6379/0 -> redis://agent:<password>@redis:6379/0; a Sentinel URL
#    redis+sentinel://s1:26379,s2:26379/nhigw/0 alike: it is the Redis servers' password). The
#    password must be URL-safe (init-secrets.sh makes hex ones).
set -eu

for var in $(env | sed -n 's/^\(NHIGW_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
  eval "file=\${${var}_FILE}"
  if [ ! -r "$file" ]; then
    echo "nhigw-entrypoint: ${var}_FILE: cannot read $file" >&2
    exit 64
  fi
  value=$(cat "$file")
  export "$var=$value"
  unset "${var}_FILE"
done

if [ -n "${NHIGW_REDIS_PASSWORD:-}" ] && [ -n "${NHIGW_REDIS_URL:-}" ]; then
  case "$NHIGW_REDIS_URL" in
    redis://*|rediss://*|redis+sentinel://*|rediss+sentinel://*)
      scheme=${NHIGW_REDIS_URL%%://*}
      rest=${NHIGW_REDIS_URL#*://}
      case "$rest" in
        *:*@*) ;;  # the URL has its own password
        *@*) export NHIGW_REDIS_URL="${scheme}://${rest%%@*}:${NHIGW_REDIS_PASSWORD}@${rest#*@}" ;;
        *) export NHIGW_REDIS_URL="${scheme}://:${NHIGW_REDIS_PASSWORD}@${rest}" ;;
      esac
      ;;
  esac
fi
unset NHIGW_REDIS_PASSWORD

case "${1:-}" in
  nhigw-*) exec "$@" ;;  # nhigw-agent-demo, nhigw-init-secrets, nhigw-healthcheck
esac
exec nhigw "$@"
