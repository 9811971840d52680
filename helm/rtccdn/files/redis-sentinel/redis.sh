#!/bin/sh
# A data node of the chart's Sentinel-managed Redis: redis-server with the image's configuration,
# a replica of the primary the Sentinels name — or the primary itself when no Sentinel knows one
# yet (the group's first start: pod 0 is the first primary). The password is read from stdin, so it
# is on no command line and in no file (as the image's own entry point does).
. /opt/rtccdn-redis/common.sh

# The container's arguments (redis.extraArgs) are more redis-server options.
PRIMARY=""
sentinel_primary || true
primary=$PRIMARY
if [ -z "$primary" ]; then
  log "no Sentinel names a primary yet: $FIRST is the first"
  primary=$FIRST
elif [ "$primary" = "$SELF" ] && [ ! -d /data/appendonlydir ]; then
  # The Sentinels still name this node, which restarted without its data before they noticed.
  # Starting as that primary, empty, would empty the replicas too (they copy the primary): wait for
  # the Sentinels to promote a replica instead — or start when there is none to promote.
  host=$SENTINEL_ASKED
  replicas=$(ask_sentinel "$host" sentinel replicas "$RTCCDN_SENTINEL_MASTER" | grep -c '^name$' || true)
  if [ "${replicas:-0}" -gt 0 ]; then
    log "the Sentinels name this node, which has no data, as primary: waiting for them to promote one of its $replicas replicas"
    waited=0
    while [ "$primary" = "$SELF" ]; do
      if [ "$waited" -ge "$RTCCDN_FAILOVER_WAIT_S" ]; then
        log "no failover within ${RTCCDN_FAILOVER_WAIT_S}s: exiting rather than serving an empty primary (the replicas would copy it)"
        exit 1
      fi
      sleep 1
      waited=$((waited + 1))
      PRIMARY=$SELF
      sentinel_primary || true
      primary=$PRIMARY
    done
  fi
fi

if [ "$primary" = "$SELF" ]; then
  log "starting as the primary ($SELF)"
else
  log "starting as a replica of $primary"
  set -- --replicaof "$primary" "$REDIS_PORT" "$@"
fi
exec redis-server /etc/rtccdn/redis.conf --port "$REDIS_PORT" --replica-announce-ip "$SELF" \
  --repl-diskless-sync-delay 0 "$@" - <<CONF
requirepass $REDIS_PASSWORD
masterauth $REDIS_PASSWORD
CONF
