#!/bin/sh
# Entry point of rtccdn/redis (under tini): redis-server with /etc/rtccdn/redis.conf, the
# arguments given (e.g. --maxmemory 100mb) and, when REDIS_PASSWORD is set, `requirepass` read
# from stdin — so the password is on no command line and in no file. The shell is replaced by
# redis-server (exec), which then receives tini's SIGTERM itself and shuts down cleanly (the AOF
# fsynced). Clients in the container authenticate with REDISCLI_AUTH (redis-cli reads it).
set -eu
case "${1:-}" in
  -v | --version | -h | --help) exec redis-server "$@" ;;
  -* | "") ;;
  # A command instead of options: `docker run rtccdn/redis redis-cli -h ...`.
  *) exec "$@" ;;
esac
if [ -n "${REDIS_PASSWORD:-}" ]; then
  case "$REDIS_PASSWORD" in
    *[!A-Za-z0-9._~-]*)
      echo "rtccdn-redis: REDIS_PASSWORD may hold only letters, digits and . _ ~ - (it goes into a config line and a URL)" >&2
      exit 2
      ;;
  esac
  exec redis-server /etc/rtccdn/redis.conf "$@" - <<CONF
requirepass $REDIS_PASSWORD
CONF
fi
exec redis-server /etc/rtccdn/redis.conf "$@"
