#!/usr/bin/env bash
# A real local Kubernetes cluster on this one machine, for trying and testing rtccdn's Kubernetes
# deployment (see docs/local-cluster.md):
#
#   scripts/cluster/cluster.sh up       (npm run cluster -- up)      start it, or check and reuse it
#   scripts/cluster/cluster.sh down     (npm run cluster -- down)    remove everything `up` created
#   scripts/cluster/cluster.sh status   (npm run cluster -- status)  components, nodes, pods
#   scripts/cluster/cluster.sh images   load the rtccdn images into every node again (after
#                                       `npm run images`; `up` does it too)
#
# `up` prints `KUBECONFIG=/path/to/kubeconfig` as its last line of stdout; everything else goes to
# stderr. On failure it prints one line naming the failed step and tears down what it started.
#
# Control plane on the host: etcd (127.0.0.1), kube-apiserver, kube-controller-manager and
# kube-scheduler (on the host end of the cluster bridge). Nodes: each its own network namespace
# with a veth on the bridge, its own containerd, kubelet and kube-proxy (iptables mode), a CNI
# bridge (Debian's containernetworking-plugins) for its pods; CoreDNS runs as a Deployment. Binaries
# come from scripts/cluster/build.sh (cached builds), images from Docker (`npm run images`).
#
# Environment (defaults in brackets):
#   RTCCDN_CLUSTER_DIR     state directory [/var/lib/rtccdn/cluster]
#   RTCCDN_CLUSTER_NODES   node:region list ["eu-1:eu us-1:us us-2:us"]
#   RTCCDN_CLUSTER_IMAGES  Docker images to load into the nodes
#                          ["rtccdn/media-node:latest rtccdn/operator:latest rtccdn/redis:latest"];
#                          missing ones are skipped with a warning
#   RTCCDN_CLUSTER_NET     the /16 prefix of all cluster addresses ["10.213"]: node bridge X.0.0/24
#                          (host .1, nodes .11...), pods X+1.N.0/24 per node, services X+2.0.0/24
set -Eeuo pipefail
LOG_TAG="cluster"
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MANIFESTS="$ROOT/scripts/cluster/manifests"
CMD="${1:-status}"

STATE="${RTCCDN_CLUSTER_DIR:-/var/lib/rtccdn/cluster}"
NODES_SPEC="${RTCCDN_CLUSTER_NODES:-eu-1:eu us-1:us us-2:us}"
IMAGES="${RTCCDN_CLUSTER_IMAGES:-rtccdn/media-node:latest rtccdn/operator:latest rtccdn/redis:latest}"
NET="${RTCCDN_CLUSTER_NET:-10.213}"
# A recorded cluster keeps the addresses it was created with.
if [ -f "$STATE/config.env" ]; then NET="$(sed -n 's/^net=//p' "$STATE/config.env")"; fi
[[ "$NET" =~ ^[0-9]{1,3}\.[0-9]{1,3}$ ]] && [ "${NET#*.}" -le 253 ] || { STEP="configuration"; die "RTCCDN_CLUSTER_NET must look like 10.213"; }
NET_A="${NET%%.*}"
NET_B="${NET#*.}"
POD_PREFIX="$NET_A.$((NET_B + 1))"
SVC_PREFIX="$NET_A.$((NET_B + 2))"

readonly BRIDGE="rtccdn0"
readonly HOST_IP="$NET.0.1"
readonly NODE_CIDR="$NET.0.0/24"
readonly POD_CIDR="$POD_PREFIX.0.0/16"
readonly SVC_CIDR="$SVC_PREFIX.0.0/24"
readonly API_SVC_IP="$SVC_PREFIX.0.1"
readonly DNS_IP="$SVC_PREFIX.0.10"
readonly API_PORT=6443
readonly ETCD_CLIENT="127.0.0.1:12379"
readonly ETCD_PEER="127.0.0.1:12380"
readonly CLUSTER_DOMAIN="cluster.local"
readonly CGROUP_PARENT="rtccdn-cluster"
readonly CNI_NETWORK="rtccdn-cluster"
readonly IPT_COMMENT="rtccdn-cluster"
readonly NETNS_PREFIX="rtccdn-"
readonly KUBELET_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
# Fixed host paths kubelet, containerd's shims and the CNI plugins write whatever their
# configuration says; `up` records which of them existed before, `down` removes what it added.
readonly HOST_PATHS="/run/netns /var/lib/kubelet /var/lib/kubelet/device-plugins /var/log/containers /var/log/pods /var/lib/cni /var/lib/cni/results /var/lib/cni/networks /run/containerd /run/containerd/s /var/run/cdi /etc/cdi"

PKI="$STATE/pki"
KUBECONFIG_ADMIN="$STATE/kubeconfig"

# --- node table ------------------------------------------------------------------------------------
NODE_NAMES=()
NODE_REGIONS=()
NODE_IPS=()
NODE_POD_CIDRS=()
parse_nodes() {
  local i=0 spec name region
  # From scratch: `up` parses, then its teardown of a partial cluster parses again.
  NODE_NAMES=() NODE_REGIONS=() NODE_IPS=() NODE_POD_CIDRS=()
  # A recorded cluster keeps the node list and addresses it was created with.
  if [ -f "$STATE/config.env" ]; then
    NODES_SPEC="$(sed -n 's/^nodes=//p' "$STATE/config.env")"
  fi
  for spec in $NODES_SPEC; do
    name="${spec%%:*}"
    region="${spec#*:}"
    [[ "$name" =~ ^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$ ]] || die "node name '$name' must be a short DNS label (up to 8 characters: it names a network interface)"
    [[ "$region" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] || die "region '$region' of node $name must be a DNS label"
    i=$((i + 1))
    NODE_NAMES+=("$name")
    NODE_REGIONS+=("$region")
    NODE_IPS+=("$NET.0.$((10 + i))")
    NODE_POD_CIDRS+=("$POD_PREFIX.$i.0/24")
  done
  [ "${#NODE_NAMES[@]}" -ge 1 ] || die "RTCCDN_CLUSTER_NODES lists no node"
}
node_dir() { printf '%s/nodes/%s' "$STATE" "$1"; }
netns_of() { printf '%s%s' "$NETNS_PREFIX" "$1"; }
veth_of() { printf 'rtccdn-%s' "$1"; }  # host end (at most 15 characters: names are <= 8)
containerd_sock() { printf '%s/containerd/containerd.sock' "$(node_dir "$1")"; }

# --- processes -------------------------------------------------------------------------------------
# start_proc <name> <netns|-> <binary> <args>...: runs a component in the background, detached
# (setsid), in the node's network namespace when given (nsenter --net: same mount namespace as the
# host, so kubelet's volume mounts are visible to containerd), logging to $STATE/logs/<name>.log.
start_proc() {
  local name=$1 netns=$2 pid
  shift 2
  mkdir -p "$STATE/logs" "$STATE/pids"
  # 8<&-: the components must not inherit the lock on this script (see the end of the file).
  if [ "$netns" = - ]; then
    setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null 8<&- &
  else
    setsid nsenter --net="/run/netns/$netns" -- "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null 8<&- &
  fi
  pid=$!
  disown "$pid" # no "Killed" job notices from this shell when down (or a test) ends it
  printf '%s %s\n' "$pid" "$(readlink -f "$1")" >"$STATE/pids/$name.pid"
}
# proc_pid <name>: the pid of a running component (checked against the binary it was started as).
proc_pid() {
  local f="$STATE/pids/$1.pid" pid bin exe
  [ -f "$f" ] || return 1
  read -r pid bin <"$f"
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  [ "$exe" = "$bin" ] || [ "$(readlink -f /usr/bin/nsenter)" = "$exe" ] || return 1
  printf '%s' "$pid"
}
proc_alive() { proc_pid "$1" >/dev/null; }
# stop_procs <name>...: SIGTERM to all, up to 10 s for them to exit, then SIGKILL.
stop_procs() {
  local name pid pids=() i alive
  for name in "$@"; do
    if pid="$(proc_pid "$name")"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for i in $(seq 1 40); do
    alive=0
    for pid in "${pids[@]}"; do [ ! -d "/proc/$pid" ] || alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.25
  done
  for pid in "${pids[@]}"; do
    if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for name in "$@"; do rm -f "$STATE/pids/$name.pid"; done
}
# expect_alive <name> <seconds> <check cmd>...: waits for a component's check, failing early with
# the tail of its log if the process exits.
expect_alive() {
  local name=$1 limit=$2 end
  shift 2
  end=$((SECONDS + limit))
  STEP_LOG="$STATE/logs/$name.log"
  until "$@" >/dev/null 2>&1; do
    proc_alive "$name" || die "$name exited (log: $STATE/logs/$name.log)"
    [ "$SECONDS" -lt "$end" ] || die "$name not ready after ${limit} s (log: $STATE/logs/$name.log)"
    sleep 0.5
  done
  STEP_LOG=""
}

kubectl_admin() { "$BIN_TESTENV/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# --- binaries --------------------------------------------------------------------------------------
load_binaries() {
  STEP="build or find the cluster binaries (scripts/cluster/build.sh)"
  local out line
  out="$(bash "$ROOT/scripts/cluster/build.sh")"
  while IFS= read -r line; do
    case "$line" in
      testenv=*) BIN_TESTENV="${line#*=}" ;;
      kube=*) BIN_KUBE="${line#*=}" ;;
      containerd=*) BIN_CONTAINERD="${line#*=}" ;;
      coredns=*) BIN_COREDNS="${line#*=}" ;;
      pause=*) BIN_PAUSE="${line#*=}" ;;
    esac
  done <<<"$out"
  [ -n "${BIN_TESTENV:-}" ] && [ -n "${BIN_KUBE:-}" ] && [ -n "${BIN_CONTAINERD:-}" ] &&
    [ -n "${BIN_COREDNS:-}" ] && [ -n "${BIN_PAUSE:-}" ] || die "scripts/cluster/build.sh did not name every bin dir"
  PAUSE_TAG="$(cat "$BIN_PAUSE/pause.tag")"
  PAUSE_IMAGE="rtccdn.local/pause:$PAUSE_TAG"
  COREDNS_VERSION="$("$BIN_COREDNS/coredns" -version | sed -n 's/^CoreDNS-\([0-9.]*\).*/\1/p')"
  COREDNS_IMAGE="rtccdn.local/coredns:$COREDNS_VERSION"
}
# Only the testenv bin dir (kubectl) without building anything: for status/down.
find_kubectl() {
  BIN_TESTENV=""
  if [ -f "$STATE/bins.env" ]; then BIN_TESTENV="$(sed -n 's/^testenv=//p' "$STATE/bins.env")"; fi
  if [ -z "$BIN_TESTENV" ] || [ ! -x "$BIN_TESTENV/kubectl" ]; then BIN_TESTENV="$(dirname "$(command -v kubectl || echo /nonexistent/kubectl)")"; fi
}

# --- preflight -------------------------------------------------------------------------------------
preflight() {
  STEP="preflight"
  [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, mounts, cgroups)"
  [ -d /sys/fs/cgroup/memory ] || die "needs cgroup v1 (hybrid) with the memory controller at /sys/fs/cgroup/memory"
  STEP="install Debian packages"
  ensure_pkgs iptables runc containernetworking-plugins openssl curl util-linux iproute2
  local c
  for c in ip iptables nsenter openssl curl runc; do command -v "$c" >/dev/null || die "$c is missing"; done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/portmap ] &&
    [ -x /usr/lib/cni/loopback ] || die "CNI plugins missing in /usr/lib/cni (containernetworking-plugins)"
  STEP="start the Docker engine"
  DOCKER="$(bash "$ROOT/scripts/docker.sh" ensure 8<&- | sed -n 's/^DOCKER=//p' | tail -n 1)"
}

# check_addresses: none of the cluster's ranges may overlap a route that exists on this machine,
# and the control plane's ports must be free (a cluster already up is handled before this).
check_addresses() {
  STEP="check that the cluster's address ranges are unused"
  local cidr route
  for cidr in "$NODE_CIDR" "$POD_CIDR" "$SVC_CIDR"; do
    route="$(ip -4 route show to match "${cidr%/*}" | grep -v '^default' | head -n 1 || true)"
    [ -z "$route" ] || die "$cidr overlaps the existing route '$route' (set RTCCDN_CLUSTER_NET to another /16 prefix)"
    route="$(ip -4 route show root "$cidr" | head -n 1 || true)"
    [ -z "$route" ] || die "$cidr contains the existing route '$route' (set RTCCDN_CLUSTER_NET)"
  done
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "network interface $BRIDGE exists but no cluster is recorded in $STATE (run down first)"
  local name
  for name in "${NODE_NAMES[@]}"; do
    ! ip link show "$(veth_of "$name")" >/dev/null 2>&1 ||
      die "network interface $(veth_of "$name") exists but no cluster is recorded in $STATE (left by an earlier cluster: ip link del $(veth_of "$name"))"
    [ ! -e "/run/netns/$(netns_of "$name")" ] ||
      die "network namespace $(netns_of "$name") exists but no cluster is recorded in $STATE (left by an earlier cluster: ip netns del $(netns_of "$name"))"
  done
  local port
  for port in "${ETCD_CLIENT##*:}" "${ETCD_PEER##*:}"; do
    ! ss -Hltn "sport = :$port" | grep -q . || die "port $port on 127.0.0.1 (etcd) is in use"
  done
}

# --- network ---------------------------------------------------------------------------------------
record() { printf '%s\n' "$*" >>"$STATE/created.txt"; }

setup_network() {
  STEP="create the bridge $BRIDGE ($HOST_IP/24)"
  ip link add "$BRIDGE" type bridge
  record "link $BRIDGE"
  ip addr add "$HOST_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Docker sets the FORWARD policy to DROP; bridged traffic between the nodes crosses FORWARD
  # (br_netfilter): allow exactly that.
  STEP="allow forwarding on $BRIDGE"
  iptables -w -I FORWARD 1 -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$IPT_COMMENT" -j ACCEPT
  record "iptables FORWARD -i $BRIDGE -o $BRIDGE -m comment --comment $IPT_COMMENT -j ACCEPT"

  local i name ns veth ip j
  for i in "${!NODE_NAMES[@]}"; do
    name="${NODE_NAMES[$i]}"
    ns="$(netns_of "$name")"
    veth="$(veth_of "$name")"
    ip="${NODE_IPS[$i]}"
    STEP="create the network namespace of node $name ($ip)"
    ip netns add "$ns"
    record "netns $ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    # Deleting the host end removes the pair at once; `ip netns del` alone frees it only when the
    # last process in the namespace has gone, which can be after the next `up` wants the name.
    record "link $veth"
    ip link set "$veth" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 up
    # No default route in a node: pods and nodes reach the cluster's addresses only. Other nodes'
    # pod ranges go through those nodes; Service IPs go out eth0 (kube-proxy DNATs them first).
    for j in "${!NODE_NAMES[@]}"; do
      [ "$j" = "$i" ] || ip -n "$ns" route add "${NODE_POD_CIDRS[$j]}" via "${NODE_IPS[$j]}"
    done
    ip -n "$ns" route add "$SVC_CIDR" dev eth0
    nsenter --net="/run/netns/$ns" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
    # The host reaches each node's pods through the node (routes before any traffic to a pod IP).
    ip route add "${NODE_POD_CIDRS[$i]}" via "$ip"
    record "route ${NODE_POD_CIDRS[$i]}"
  done
  # Service IPs from the host: through the first node's kube-proxy (it masquerades traffic from
  # outside the pod range, so replies come back the same way).
  STEP="route Service IPs through node ${NODE_NAMES[0]}"
  ip route add "$SVC_CIDR" via "${NODE_IPS[0]}"
  record "route $SVC_CIDR"
}

# --- PKI and kubeconfigs ---------------------------------------------------------------------------
# cert <name> <subject> <extensions>: a key and a certificate signed by the cluster CA.
cert() {
  local name=$1 subject=$2 ext=$3
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

# kubeconfig <file> <user cert name>
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rtccdn-local
  cluster:
    server: https://$HOST_IP:$API_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: rtccdn-local
  context: {cluster: rtccdn-local, user: $2, namespace: default}
current-context: rtccdn-local
EOF
  chmod 0600 "$1"
}

setup_pki() {
  STEP="create the cluster's certificates"
  mkdir -p "$PKI" "$STATE/kubeconfigs"
  chmod 0700 "$PKI"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=rtccdn-local-ca" \
    -days 365 -sha256 -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$HOST_IP,IP:$API_SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
  # Front proxy (aggregation layer), as kubeadm sets it up: the controller-manager and scheduler
  # read this CA from kube-system/extension-apiserver-authentication.
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/front-proxy-ca.key" -subj "/CN=rtccdn-local-front-proxy-ca" \
    -days 365 -sha256 -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/front-proxy-ca.crt" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" \
    -out "$PKI/front-proxy-client.csr" 2>/dev/null
  printf '%s\n' "$client_ext" >"$PKI/front-proxy-client.ext"
  openssl x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$PKI/front-proxy-client.ext" -out "$PKI/front-proxy-client.crt" 2>/dev/null
  rm -f "$PKI/front-proxy-client.csr" "$PKI/front-proxy-client.ext"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  cert admin "/O=system:masters/CN=rtccdn-local-admin" "$client_ext"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client_ext"
  cert controller-manager "/CN=system:kube-controller-manager" "$client_ext"
  cert scheduler "/CN=system:kube-scheduler" "$client_ext"
  cert kube-proxy "/CN=system:kube-proxy" "$client_ext"
  kubeconfig "$KUBECONFIG_ADMIN" admin
  kubeconfig "$STATE/kubeconfigs/controller-manager" controller-manager
  kubeconfig "$STATE/kubeconfigs/scheduler" scheduler
  kubeconfig "$STATE/kubeconfigs/kube-proxy" kube-proxy
  local name
  for name in "${NODE_NAMES[@]}"; do
    cert "kubelet-$name" "/O=system:nodes/CN=system:node:$name" "$client_ext"
    kubeconfig "$STATE/kubeconfigs/kubelet-$name" "kubelet-$name"
  done
}

# --- control plane ---------------------------------------------------------------------------------
apiserver_ready() {
  curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$HOST_IP:$API_PORT/readyz" >/dev/null
}

start_control_plane() {
  STEP="start etcd"
  mkdir -p "$STATE/etcd"
  start_proc etcd - "$BIN_TESTENV/etcd" --name=rtccdn-local --data-dir="$STATE/etcd" \
    --listen-client-urls="http://$ETCD_CLIENT" --advertise-client-urls="http://$ETCD_CLIENT" \
    --listen-peer-urls="http://$ETCD_PEER" --initial-advertise-peer-urls="http://$ETCD_PEER" \
    --initial-cluster="rtccdn-local=http://$ETCD_PEER" --initial-cluster-state=new \
    --listen-metrics-urls="" --unsafe-no-fsync --log-level=warn
  expect_alive etcd 60 curl -sf --max-time 2 "http://$ETCD_CLIENT/health"

  STEP="start kube-apiserver"
  start_proc kube-apiserver - "$BIN_TESTENV/kube-apiserver" \
    --etcd-servers="http://$ETCD_CLIENT" \
    --bind-address="$HOST_IP" --advertise-address="$HOST_IP" --secure-port="$API_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SVC_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --allow-privileged=true --profiling=false --v=1
  expect_alive kube-apiserver 120 apiserver_ready

  STEP="start kube-controller-manager"
  start_proc kube-controller-manager - "$BIN_KUBE/kube-controller-manager" \
    --kubeconfig="$STATE/kubeconfigs/controller-manager" \
    --authentication-kubeconfig="$STATE/kubeconfigs/controller-manager" \
    --authorization-kubeconfig="$STATE/kubeconfigs/controller-manager" \
    --bind-address="$HOST_IP" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range="$SVC_CIDR" \
    --cluster-cidr="$POD_CIDR" --allocate-node-cidrs=false \
    --leader-elect=false --profiling=false --v=1
  STEP="start kube-scheduler"
  start_proc kube-scheduler - "$BIN_KUBE/kube-scheduler" \
    --kubeconfig="$STATE/kubeconfigs/scheduler" \
    --authentication-kubeconfig="$STATE/kubeconfigs/scheduler" \
    --authorization-kubeconfig="$STATE/kubeconfigs/scheduler" \
    --bind-address="$HOST_IP" --leader-elect=false --profiling=false --v=1
  STEP="wait for kube-controller-manager and kube-scheduler"
  expect_alive kube-controller-manager 60 curl -sfk --max-time 2 "https://$HOST_IP:10257/healthz"
  expect_alive kube-scheduler 60 curl -sfk --max-time 2 "https://$HOST_IP:10259/healthz"
}

# --- nodes -----------------------------------------------------------------------------------------
record_host_paths() {
  local p
  : >"$STATE/host-paths-before.txt"
  for p in $HOST_PATHS; do
    [ ! -e "$p" ] || printf '%s\n' "$p" >>"$STATE/host-paths-before.txt"
  done
  : >"$STATE/sysctls-before.txt"
  for p in $KUBELET_SYSCTLS; do
    printf '%s=%s\n' "$p" "$(sysctl -n "$p")" >>"$STATE/sysctls-before.txt"
  done
}

# cgroup v1: kubelet's cgroupRoot must exist in every controller (cpuset needs cpus/mems set).
make_cgroups() {
  local name=$1 c dir
  for c in /sys/fs/cgroup/*/; do
    c="${c%/}"
    [ -d "$c" ] && mountpoint -q "$c" || continue
    for dir in "$c/$CGROUP_PARENT" "$c/$CGROUP_PARENT/$name"; do
      mkdir -p "$dir"
      if [ -f "$dir/cpuset.cpus" ]; then
        [ -n "$(cat "$dir/cpuset.cpus")" ] || cat "$(dirname "$dir")/cpuset.cpus" >"$dir/cpuset.cpus"
        [ -n "$(cat "$dir/cpuset.mems")" ] || cat "$(dirname "$dir")/cpuset.mems" >"$dir/cpuset.mems"
      fi
    done
  done
}

write_node_configs() {
  local i=$1 name="${NODE_NAMES[$1]}" dir ip="${NODE_IPS[$1]}" cidr="${NODE_POD_CIDRS[$1]}"
  dir="$(node_dir "$name")"
  mkdir -p "$dir/containerd/root" "$dir/containerd/state" "$dir/cni/net.d" "$dir/cni/ipam" \
    "$dir/kubelet/root" "$dir/kubelet/pki" "$dir/pod-logs" "$dir/cdi" "$dir/opt"
  cat >"$dir/containerd/config.toml" <<EOF
# containerd of node $name (written by scripts/cluster/cluster.sh)
version = 3
root = '$dir/containerd/root'
state = '$dir/containerd/state'
disabled_plugins = ['io.containerd.nri.v1.nri', 'io.containerd.tracing.processor.v1.otlp', 'io.containerd.internal.v1.tracing']

[grpc]
  address = '$(containerd_sock "$name")'

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = '$dir/opt'
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
  [plugins.'io.containerd.cri.v1.runtime']
    # Root lacks CAP_SYS_RESOURCE here: a negative oom_score_adj would fail every container.
    restrict_oom_score_adj = true
    # Pod network namespaces live under the state dir, not in the host's /run/netns.
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = ['$dir/cdi']
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$(command -v runc)'
          # runc's state (default /run/containerd/runc/<namespace>) stays in the node's directory.
          Root = '$dir/containerd/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$dir/cni/net.d'
      # containerd brings up the pods' lo itself (the loopback plugin would cache results in
      # /var/lib/cni under a network name that is not this cluster's).
      use_internal_loopback = true
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
EOF
  cat >"$dir/cni/net.d/10-rtccdn.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{ "subnet": "$cidr" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: unix://$(containerd_sock "$name")
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$DNS_IP]
# Pods never inherit the machine's resolver: cluster names only.
resolvConf: ""
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_PARENT/$name
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
podLogsDir: $dir/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
EOF
  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kubeconfigs/kube-proxy}
mode: iptables
hostnameOverride: $name
bindAddress: $ip
healthzBindAddress: $ip:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$NODE_CIDR"]
oomScoreAdj: 0
# 0 leaves the machine's conntrack settings alone (kube-proxy would otherwise change them).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

ctr_node() { "$BIN_CONTAINERD/ctr" --address "$(containerd_sock "$1")" -n k8s.io "${@:2}"; }

start_node() {
  local i=$1 name="${NODE_NAMES[$1]}" ns dir
  ns="$(netns_of "$name")"
  dir="$(node_dir "$name")"
  STEP="node $name: cgroups and configuration"
  make_cgroups "$name"
  write_node_configs "$i"
  STEP="node $name: start containerd"
  start_proc "containerd-$name" "$ns" "$BIN_CONTAINERD/containerd" --config "$dir/containerd/config.toml"
  expect_alive "containerd-$name" 60 ctr_node "$name" version
}

start_node_agents() {
  local i=$1 name="${NODE_NAMES[$1]}" ns dir
  ns="$(netns_of "$name")"
  dir="$(node_dir "$name")"
  STEP="node $name: start kubelet"
  start_proc "kubelet-$name" "$ns" "$BIN_KUBE/kubelet" \
    --config="$dir/kubelet/config.yaml" --kubeconfig="$STATE/kubeconfigs/kubelet-$name" \
    --root-dir="$dir/kubelet/root" --cert-dir="$dir/kubelet/pki" \
    --hostname-override="$name" --node-ip="${NODE_IPS[$i]}" \
    --node-labels="topology.kubernetes.io/region=${NODE_REGIONS[$i]},rtccdn.io/local-cluster=true" \
    --v=1
  STEP="node $name: start kube-proxy"
  start_proc "kube-proxy-$name" "$ns" "$BIN_KUBE/kube-proxy" --config="$dir/kube-proxy.yaml" --v=1
}

# --- images ----------------------------------------------------------------------------------------
# ensure_local_image <tag> <bin dir> <binary> [entrypoint args...]: a one-binary image (docker import).
ensure_local_image() {
  local tag=$1 bindir=$2 binary=$3 sum
  shift 3
  sum="$(sha256sum "$bindir/$binary" | cut -c1-16)"
  if [ "$("$DOCKER" image inspect -f '{{ index .Config.Labels "io.rtccdn.binary" }}' "$tag" 2>/dev/null)" = "$sum" ]; then
    return 0
  fi
  local entry
  entry="$(printf '"%s",' "/$binary" "$@")"
  tar -C "$bindir" -c --owner=0 --group=0 "$binary" |
    "$DOCKER" import --change "ENTRYPOINT [${entry%,}]" --change "LABEL io.rtccdn.binary=$sum" - "$tag" >/dev/null
}

# save_images <name> <image>...: one docker-archive of the images (layers they share stored
# once), cached by their image ids in the build cache; prints its path.
save_images() {
  local name=$1 dir="${RTCCDN_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtccdn/cluster}/image-archives" key file
  shift
  key="$(for image in "$@"; do printf '%s %s\n' "$image" "$("$DOCKER" image inspect -f '{{.Id}}' "$image")"; done | sha256sum | cut -c1-16)"
  file="$dir/$name-$key.tar"
  mkdir -p "$dir"
  if [ ! -s "$file" ]; then
    rm -f "$dir/$name"-*.tar
    "$DOCKER" save "$@" >"$file.tmp"
    mv "$file.tmp" "$file"
  fi
  printf '%s' "$file"
}

load_images() {
  STEP="build the pause and coredns images"
  ensure_local_image "$PAUSE_IMAGE" "$BIN_PAUSE" pause
  ensure_local_image "$COREDNS_IMAGE" "$BIN_COREDNS" coredns
  local apps=() image
  for image in $IMAGES; do
    if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
      apps+=("$image")
    else
      log "warning: image $image is not built (npm run images); not loaded"
    fi
  done
  STEP="save images (docker save)"
  local system_tar app_tar=""
  system_tar="$(save_images system "$PAUSE_IMAGE" "$COREDNS_IMAGE")"
  [ "${#apps[@]}" = 0 ] || app_tar="$(save_images apps "${apps[@]}")"
  local name pids=() i
  for name in "${NODE_NAMES[@]}"; do
    STEP="load images into node $name"
    (
      marker="$(node_dir "$name")/images-loaded.txt"
      touch "$marker"
      # The cluster's own images are unpacked now; the application images are unpacked by
      # containerd when a pod first uses them on this node (import stores their layers only).
      if ! grep -qxF "$system_tar" "$marker"; then
        ctr_node "$name" images import "$system_tar"
        printf '%s\n' "$system_tar" >>"$marker"
      fi
      if [ -n "$app_tar" ] && ! grep -qxF "$app_tar" "$marker"; then
        ctr_node "$name" images import --no-unpack "$app_tar"
        printf '%s\n' "$app_tar" >>"$marker"
      fi
    ) >>"$STATE/logs/images-$name.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    STEP="load images into node ${NODE_NAMES[$i]}"
    STEP_LOG="$STATE/logs/images-${NODE_NAMES[$i]}.log"
    wait "${pids[$i]}"
    STEP_LOG=""
  done
}

# --- cluster add-ons -------------------------------------------------------------------------------
apply_addons() {
  STEP="wait for the nodes to be Ready"
  local name i
  for name in "${NODE_NAMES[@]}"; do
    wait_until 120 "node $name to register" kubectl_admin get node "$name"
  done
  # The pod range of each node is fixed by this script (routes exist before any pod starts);
  # recorded in the Node objects for tools that read it.
  for i in "${!NODE_NAMES[@]}"; do
    kubectl_admin patch node "${NODE_NAMES[$i]}" --type=merge \
      -p "{\"spec\":{\"podCIDR\":\"${NODE_POD_CIDRS[$i]}\",\"podCIDRs\":[\"${NODE_POD_CIDRS[$i]}\"]}}" >/dev/null 2>&1 || true
  done
  STEP_LOG="$STATE/logs/kubelet-${NODE_NAMES[0]}.log"
  kubectl_admin wait node --all --for=condition=Ready --timeout=120s >/dev/null
  STEP_LOG=""
  STEP="deploy CoreDNS"
  sed -e "s#@DNS_IP@#$DNS_IP#g" -e "s#@COREDNS_IMAGE@#$COREDNS_IMAGE#g" -e "s#@CLUSTER_DOMAIN@#$CLUSTER_DOMAIN#g" \
    "$MANIFESTS/coredns.yaml" | kubectl_admin apply -f - >/dev/null
  kubectl_admin -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null
}

# --- status ----------------------------------------------------------------------------------------
components() {
  printf '%s\n' etcd kube-apiserver kube-controller-manager kube-scheduler
  local name
  for name in "${NODE_NAMES[@]}"; do printf '%s\n' "containerd-$name" "kubelet-$name" "kube-proxy-$name"; done
}

healthy() {
  [ -f "$STATE/up.done" ] || return 1
  local c
  for c in $(components); do proc_alive "$c" || return 1; done
  apiserver_ready || return 1
}

status() {
  STEP="status"
  parse_nodes
  if [ ! -d "$STATE" ]; then
    log "no cluster (nothing in $STATE)"
    return 3
  fi
  local c state rc=0 pid rss total=0
  for c in $(components); do
    if pid="$(proc_pid "$c")"; then
      rss="$(awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$pid/status" 2>/dev/null || echo 0)"
      total=$((total + rss))
      state="running (pid $pid, ${rss} MiB)"
    else
      state="NOT RUNNING"
      rc=1
    fi
    printf '%-28s %s\n' "$c" "$state"
  done
  local pods_mem=0
  if [ -f "/sys/fs/cgroup/memory/$CGROUP_PARENT/memory.usage_in_bytes" ]; then
    pods_mem=$(($(cat "/sys/fs/cgroup/memory/$CGROUP_PARENT/memory.usage_in_bytes") / 1048576))
  fi
  printf 'memory: control plane and node agents %s MiB (RSS), pods %s MiB (cgroup %s, page cache included)\n' \
    "$total" "$pods_mem" "/$CGROUP_PARENT"
  find_kubectl
  if [ -f "$KUBECONFIG_ADMIN" ] && [ -x "$BIN_TESTENV/kubectl" ] && apiserver_ready; then
    kubectl_admin get nodes -L topology.kubernetes.io/region -o wide 2>&1 || rc=1
    kubectl_admin get pods -A -o wide 2>&1 || rc=1
  else
    printf 'kube-apiserver does not answer\n'
    rc=1
  fi
  printf 'KUBECONFIG=%s\n' "$KUBECONFIG_ADMIN"
  return "$rc"
}

# --- down ------------------------------------------------------------------------------------------
# Everything below tolerates partial state: it is also what a failed `up` runs.
kill_cgroup_tree() {
  local c=$1 pass procs
  [ -d "$c" ] || return 0
  for pass in 1 2 3 4 5 6 7 8 9 10; do
    procs="$(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [ -n "$procs" ] || break
    # shellcheck disable=SC2086
    kill -KILL $procs 2>/dev/null || true
    sleep 0.3
  done
  find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
}

teardown() {
  local mode="${1:-}"
  parse_nodes
  [ -d "$STATE" ] || { log "nothing to remove ($STATE does not exist)"; return 0; }
  local name c dir hash id sock
  log "tearing down the cluster in $STATE"
  # Node agents first (no restarts of what is killed next), then every container process (all of
  # them live in the cluster's cgroups), then the shims and containerd.
  local agents=()
  for name in "${NODE_NAMES[@]}"; do agents+=("kubelet-$name" "kube-proxy-$name"); done
  stop_procs "${agents[@]}"
  for c in /sys/fs/cgroup/*/"$CGROUP_PARENT"; do
    [ -d "$c" ] || continue
    for pid in $(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for name in "${NODE_NAMES[@]}"; do
    dir="$(node_dir "$name")"
    sock="$(containerd_sock "$name")"
    # Shims of this containerd (their command line names its socket).
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    # Shim sockets live in /run/containerd/s/<sha256 of "<socket>/<namespace>/<id>">.
    if [ -d "$dir/containerd/state/io.containerd.runtime.v2.task/k8s.io" ]; then
      for id in $(ls "$dir/containerd/state/io.containerd.runtime.v2.task/k8s.io"); do
        hash="$(printf '%s' "$sock/k8s.io/$id" | sha256sum | cut -d' ' -f1)"
        rm -f "/run/containerd/s/$hash"
      done
    fi
  done
  local runtimes=()
  for name in "${NODE_NAMES[@]}"; do runtimes+=("containerd-$name"); done
  stop_procs "${runtimes[@]}"
  for c in /sys/fs/cgroup/*/"$CGROUP_PARENT"; do kill_cgroup_tree "$c"; done
  stop_procs kube-scheduler kube-controller-manager kube-apiserver
  stop_procs etcd

  # Mounts under the state dir (container rootfs, pod volumes, shm, pod network namespaces),
  # deepest first.
  local m
  for m in $(awk -v s="$STATE/" 'index($2, s) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done

  # Network: what `up` recorded, in reverse.
  if [ -f "$STATE/created.txt" ]; then
    local line kind rest
    while IFS= read -r line; do
      kind="${line%% *}"
      rest="${line#* }"
      case "$kind" in
        route) ip route del $rest 2>/dev/null || true ;;
        netns) ip netns del "$rest" 2>/dev/null || true ;;
        link) ip link del "$rest" 2>/dev/null || true ;;
        iptables)
          # shellcheck disable=SC2086
          set -- $rest
          local chain=$1
          shift
          while iptables -w -D "$chain" "$@" 2>/dev/null; do :; done
          ;;
      esac
    done < <(tac "$STATE/created.txt")
  fi
  # Node ends of the network recorded by older versions (netns only) or left by a failed step.
  for name in "${NODE_NAMES[@]}"; do
    ip link del "$(veth_of "$name")" 2>/dev/null || true
    ip netns del "$(netns_of "$name")" 2>/dev/null || true
  done

  # Fixed host paths: remove what this run added, nothing else.
  if [ -f "$STATE/host-paths-before.txt" ]; then
    local p
    # Entries that belong to this cluster inside directories that may be shared.
    find /var/log/containers -maxdepth 1 -type l -lname "$STATE/*" -delete 2>/dev/null || true
    rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
    for p in $(printf '%s\n' $HOST_PATHS | sort -r); do
      grep -qxF "$p" "$STATE/host-paths-before.txt" && continue
      [ -e "$p" ] || continue
      case "$p" in
        /var/lib/kubelet/device-plugins) rm -f "$p/kubelet.sock" "$p/DEPRECATION" ;;
        # `ip netns add` bind-mounts /run/netns onto itself the first time.
        /run/netns) if [ -z "$(ls -A "$p")" ] && mountpoint -q "$p"; then umount "$p" 2>/dev/null || true; fi ;;
      esac
      rmdir "$p" 2>/dev/null || log "warning: $p is not empty; left in place"
    done
  fi
  if [ -f "$STATE/sysctls-before.txt" ]; then
    local kv
    while IFS= read -r kv; do sysctl -qw "$kv" 2>/dev/null || log "warning: could not restore $kv"; done <"$STATE/sysctls-before.txt"
  fi
  if [ "$mode" = keep-logs ] && [ -d "$STATE/logs" ]; then
    # After a failed up: the logs stay for reading (`down` removes them).
    find "$STATE" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
    log "cluster removed; its logs stay in $STATE/logs until 'down'"
    return 0
  fi
  rm -rf "$STATE"
  rmdir "$(dirname "$STATE")" 2>/dev/null || true
  log "cluster removed"
}

# --- up --------------------------------------------------------------------------------------------
up_failed() {
  log "up failed: removing what it started"
  teardown keep-logs || true
}

up() {
  parse_nodes
  preflight
  load_binaries
  if [ -d "$STATE" ]; then
    if healthy; then
      log "cluster already up: reloading images"
      ON_FAILURE=""
      load_images
      STEP="check the cluster"
      kubectl_admin wait node --all --for=condition=Ready --timeout=60s >/dev/null
      printf 'KUBECONFIG=%s\n' "$KUBECONFIG_ADMIN"
      return 0
    fi
    log "an unhealthy or partial cluster is recorded in $STATE: removing it first"
    teardown
  fi
  check_addresses
  local t0=$SECONDS
  mkdir -p "$STATE"
  ON_FAILURE=up_failed
  printf 'nodes=%s\nnet=%s\n' "$NODES_SPEC" "$NET" >"$STATE/config.env"
  printf 'testenv=%s\nkube=%s\ncontainerd=%s\ncoredns=%s\npause=%s\n' "$BIN_TESTENV" "$BIN_KUBE" \
    "$BIN_CONTAINERD" "$BIN_COREDNS" "$BIN_PAUSE" >"$STATE/bins.env"
  record_host_paths
  setup_network
  setup_pki
  start_control_plane
  log "control plane ready ($((SECONDS - t0)) s)"
  local i
  export PATH="$BIN_CONTAINERD:$PATH" # containerd starts containerd-shim-runc-v2 from PATH
  for i in "${!NODE_NAMES[@]}"; do start_node "$i"; done
  load_images
  log "images loaded into the nodes ($((SECONDS - t0)) s)"
  for i in "${!NODE_NAMES[@]}"; do start_node_agents "$i"; done
  apply_addons
  touch "$STATE/up.done"
  ON_FAILURE=""
  log "cluster up in $((SECONDS - t0)) s: ${#NODE_NAMES[@]} nodes ($NODES_SPEC), API https://$HOST_IP:$API_PORT"
  printf 'KUBECONFIG=%s\n' "$KUBECONFIG_ADMIN"
}

# One up/down/images at a time on this machine (they share the bridge name and fixed host paths);
# the lock is the script file itself, so nothing is created for it. Daemons started from here get
# the descriptor closed (8<&-): a running cluster must not hold the lock.
case "$CMD" in
  up | down | images)
    exec 8<"${BASH_SOURCE[0]}"
    flock -w 900 8 || { STEP="lock"; die "another cluster.sh up/down is running"; }
    ;;
esac

case "$CMD" in
  up) up ;;
  down)
    STEP="down"
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    teardown
    ;;
  status) status || { FAIL_MSG="[cluster] status: the cluster is not (completely) running"; exit 1; } ;;
  images)
    parse_nodes
    preflight
    load_binaries
    healthy || { STEP="images"; die "no healthy cluster in $STATE (run up)"; }
    load_images
    ;;
  -h | --help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) STEP="parse arguments"; die "unknown command '$CMD' (use up, down, status or images)" ;;
esac
