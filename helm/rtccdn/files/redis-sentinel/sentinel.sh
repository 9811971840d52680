#!/bin/sh
# The Sentinel of one pod of the chart's Sentinel-managed Redis: monitors the primary the other
# Sentinels name (or pod 0's data node on the group's first start) and finds the replicas and the
# other Sentinels from it. Its configuration — which Sentinel rewrites as it learns — lives in the
# pod's memory-backed emptyDir /sentinel, not in the image (read-only) nor on a disk.
. /opt/rtccdn-redis/common.sh

PRIMARY=$FIRST
sentinel_primary || true
primary=$PRIMARY
log "monitoring $RTCCDN_SENTINEL_MASTER at $primary"
umask 077
cat >/sentinel/sentinel.conf <<CONF
port $SENTINEL_PORT
dir /sentinel
logfile ""
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SELF
sentinel announce-port $SENTINEL_PORT
requirepass $REDIS_PASSWORD
sentinel sentinel-pass $REDIS_PASSWORD
sentinel monitor $RTCCDN_SENTINEL_MASTER $primary $REDIS_PORT $RTCCDN_SENTINEL_QUORUM
sentinel auth-pass $RTCCDN_SENTINEL_MASTER $REDIS_PASSWORD
sentinel down-after-milliseconds $RTCCDN_SENTINEL_MASTER $RTCCDN_SENTINEL_DOWN_AFTER_MS
sentinel failover-timeout $RTCCDN_SENTINEL_MASTER $RTCCDN_SENTINEL_FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $RTCCDN_SENTINEL_MASTER 1
CONF
exec redis-server /sentinel/sentinel.conf --sentinel
