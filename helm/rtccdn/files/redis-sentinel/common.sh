# Shared by the data node's and the Sentinel's start scripts of the chart's Sentinel-managed Redis
# (redis.sentinel.enabled; templates/_redis-sentinel.tpl). Sourced, not run. The pod's environment:
#   POD_NAME                <set>-<ordinal>
#   RTCCDN_REDIS_SET        the StatefulSet's name
#   RTCCDN_REDIS_HEADLESS   the governing Service's domain, <set>-headless.<namespace>.svc
#   RTCCDN_REDIS_REPLICAS   how many pods the set has
#   RTCCDN_SENTINEL_MASTER  the master name the Sentinels monitor
#   REDIS_PASSWORD          the data nodes' and the Sentinels' password (REDISCLI_AUTH too)
set -eu

log() { echo "rtccdn-redis-sentinel: $*" >&2; }

case "${REDIS_PASSWORD:-}" in
  "" | *[!A-Za-z0-9._~-]*)
    log "REDIS_PASSWORD must be set and hold only letters, digits and . _ ~ - (it goes into config lines and a URL)"
    exit 2
    ;;
esac

REDIS_PORT=6379
SENTINEL_PORT=26379
# Every node is known by its stable DNS name, not its IP (which changes with every new pod): the
# data nodes announce it (replica-announce-ip), the Sentinels resolve and announce names.
SELF="$POD_NAME.$RTCCDN_REDIS_HEADLESS"
FIRST="$RTCCDN_REDIS_SET-0.$RTCCDN_REDIS_HEADLESS"

# ask_sentinel <host> <command...>: a Sentinel's one-line answer; fails if it does not answer.
ask_sentinel() {
  host=$1
  shift
  timeout 3 redis-cli --no-auth-warning --raw -h "$host" -p "$SENTINEL_PORT" "$@" 2>/dev/null
}

# sentinel_primary: sets PRIMARY to the primary (host name) as the first Sentinel of the group that
# knows one names it, and SENTINEL_ASKED to that Sentinel; fails when none answers (the group is
# starting: nothing to follow yet). Not for $(…): it sets variables.
sentinel_primary() {
  i=0
  while [ "$i" -lt "$RTCCDN_REDIS_REPLICAS" ]; do
    host="$RTCCDN_REDIS_SET-$i.$RTCCDN_REDIS_HEADLESS"
    i=$((i + 1))
    reply=$(ask_sentinel "$host" sentinel get-master-addr-by-name "$RTCCDN_SENTINEL_MASTER" | head -n 1) || continue
    case "$reply" in
      "" | *" "* | ERR* | NOAUTH* | WRONGPASS* | IDONTKNOW* | LOADING*) continue ;;
    esac
    SENTINEL_ASKED=$host
    PRIMARY=$reply
    return 0
  done
  return 1
}
