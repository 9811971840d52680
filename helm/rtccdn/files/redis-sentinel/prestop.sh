#!/bin/sh
# preStop of a data node: a primary that is being stopped (rollout, drain, scale) hands over first —
# it asks a Sentinel for a failover and waits (bounded) until it is a replica — so clients follow a
# prepared switch instead of waiting down-after-milliseconds for a dead primary.
. /opt/rtccdn-redis/common.sh

role=$(timeout 3 redis-cli --no-auth-warning --raw -p "$REDIS_PORT" role 2>/dev/null | head -n 1) || exit 0
[ "$role" = "master" ] || exit 0
sentinel_primary || exit 0
log "stopping the primary: asking $SENTINEL_ASKED for a failover"
ask_sentinel "$SENTINEL_ASKED" sentinel failover "$RTCCDN_SENTINEL_MASTER" >&2 || exit 0
waited=0
while [ "$waited" -lt 20 ]; do
  role=$(timeout 3 redis-cli --no-auth-warning --raw -p "$REDIS_PORT" role 2>/dev/null | head -n 1) || exit 0
  [ "$role" = "master" ] || exit 0
  sleep 1
  waited=$((waited + 1))
done
