#!/usr/bin/env bash
# A real single-node Kubernetes 1.20 cluster on this machine, from Debian's
# packages. See README.md ("Testing") and ../shared/notes/local-cluster.md.
#
#   e2e/cluster.sh up [control-plane|node]   start (idempotent; default: node)
#   e2e/cluster.sh down                      stop everything it started, wipe state
#   e2e/cluster.sh status                    what runs, and whether it answers
#   e2e/cluster.sh kubeconfig                print the kubeconfig's path
#   e2e/cluster.sh logs                      print the tail of every component's log
#   e2e/cluster.sh restart COMPONENT         stop one component (etcd, kube-apiserver...) and start it again
#
# control-plane: etcd, kube-apiserver, kube-controller-manager (Jobs get Pods,
#                nothing runs them).
# node:          plus kube-scheduler, containerd, kubelet, kube-proxy, a CNI
#                bridge and an image registry on $GATEWAY_IP:5000 (plain http,
#                pods and the kubelet reach it), with local/busybox:1,
#                local/gantry-builder:1, local/kata-installer:1 and the pause
#                image imported.
source "$(dirname "$0")/lib/common.sh"
source "$E2E_DIR/lib/images.sh"

CONTROL_PLANE="etcd kube-apiserver kube-controller-manager"
NODE="kube-scheduler registry containerd kubelet kube-proxy"

pid_of() { cat "$PID_DIR/$1.pid" 2>/dev/null || true; }
running() { local pid; pid="$(pid_of "$1")"; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# start NAME CMD...: starts a daemon in the background, logging to
# $LOG_DIR/NAME.log and recording the daemon's own pid (exec, no subshell pid).
start() {
    local name="$1"; shift
    if running "$name"; then return; fi
    [ -f "$LOG_DIR/$name.log" ] && mv "$LOG_DIR/$name.log" "$LOG_DIR/$name.log.1"
    setsid "$@" > "$LOG_DIR/$name.log" 2>&1 < /dev/null &
    echo $! > "$PID_DIR/$name.pid"
}

# wait_for WHAT SECONDS CMD...: retries CMD until it succeeds.
wait_for() {
    local what="$1" seconds="$2" i; shift 2
    for ((i = 0; i < seconds * 2; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    log "$what did not come up within ${seconds}s; last log lines:"
    tail -n 30 "$LOG_DIR"/*.log >&2 || true
    die "$what is not ready"
}

ensure_packages() {
    local missing=() pkg
    for pkg in etcd-server containerd runc containernetworking-plugins busybox-static golang-go \
        rsync jq iptables conntrack openssl dpkg-dev gcc libc6-dev curl iproute2 patch \
        docker-registry skopeo debootstrap graphviz; do
        # No `| grep -q` under pipefail: grep quitting early can SIGPIPE the writer.
        [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == *"ok installed"* ]] || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Debian starts the packaged daemons; the cluster runs its own copies.
    systemctl disable --now etcd containerd docker-registry >/dev/null 2>&1 || true
    stop_packaged etcd etcd
    stop_packaged registry docker-registry
}

# stop_packaged NAME COMMAND: stops every COMMAND process except the
# cluster's own NAME (by its recorded pid), which `up` on a running cluster
# must leave alone.
stop_packaged() {
    local ours pid
    ours="$(pid_of "$1")"
    for pid in $(pgrep -x "$2" || true); do
        [ "$pid" = "$ours" ] || kill "$pid" 2>/dev/null || true
    done
}

ensure_pki() {
    mkdir -p "$PKI_DIR"
    [ -s "$PKI_DIR/sa.key" ] || openssl genrsa -out "$PKI_DIR/sa.key" 2048 2>/dev/null
    [ -s "$PKI_DIR/sa.pub" ] || openssl rsa -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
    if [ ! -s "$PKI_DIR/admin.token" ]; then
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$PKI_DIR/admin.token"
        printf '%s,admin,admin,"system:masters"\n' "$(cat "$PKI_DIR/admin.token")" > "$PKI_DIR/tokens.csv"
    fi
}

# The bridge pods attach to. Made before anything starts, because its
# gateway address is the apiserver's bind and advertise address.
ensure_bridge() {
    if ! ip link show cni0 >/dev/null 2>&1; then
        ip link add cni0 type bridge
    fi
    # Captured first: under pipefail, `ip … | grep -q` fails when grep's early exit
    # SIGPIPEs ip, and adding the address again is an error.
    local addresses; addresses="$(ip -4 addr show dev cni0)"
    [[ "$addresses" == *" $GATEWAY_IP/"* ]] || ip addr add "$GATEWAY_IP/${POD_CIDR#*/}" dev cni0
    ip link set cni0 up
    sysctl -qw net.ipv4.ip_forward=1
}

write_kubeconfig() {
    cat > "$KUBECONFIG_PATH" <<KC
apiVersion: v1
kind: Config
clusters:
- name: gantry-e2e
  cluster:
    server: https://$GATEWAY_IP:$APISERVER_PORT
    certificate-authority: $PKI_DIR/apiserver.crt
users:
- name: admin
  user:
    token: $(cat "$PKI_DIR/admin.token")
contexts:
- name: gantry-e2e
  context: {cluster: gantry-e2e, user: admin}
current-context: gantry-e2e
KC
}

kubectl_e2e() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

start_control_plane() {
    local bin="$1"
    start etcd etcd --name gantry-e2e --data-dir "$STATE_DIR/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster gantry-e2e=http://127.0.0.1:2380 --quota-backend-bytes=4294967296
    wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

    start kube-apiserver "$bin/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address "$GATEWAY_IP" --advertise-address "$GATEWAY_IP" --secure-port "$APISERVER_PORT" \
        --cert-dir "$PKI_DIR" \
        --service-account-key-file "$PKI_DIR/sa.pub" --service-account-signing-key-file "$PKI_DIR/sa.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode RBAC \
        --token-auth-file "$PKI_DIR/tokens.csv" --kubelet-preferred-address-types Hostname \
        --allow-privileged=true --event-ttl 1h --v 1
    # The apiserver writes a self-signed serving cert on first start.
    wait_for "kube-apiserver certificate" 60 test -s "$PKI_DIR/apiserver.crt"
    write_kubeconfig
    wait_for kube-apiserver 90 kubectl_e2e get --raw /readyz

    start kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig "$KUBECONFIG_PATH" --service-account-private-key-file "$PKI_DIR/sa.key" \
        --root-ca-file "$PKI_DIR/apiserver.crt" --leader-elect=false --bind-address 127.0.0.1 \
        --use-service-account-credentials=false --kube-api-qps 500 --kube-api-burst 1000 \
        --cluster-cidr "$POD_CIDR" --concurrent-gc-syncs 20 --v 1
    wait_for "kube-controller-manager" 60 curl -skf https://127.0.0.1:10257/healthz
    wait_for "default ServiceAccount" 60 kubectl_e2e -n default get serviceaccount default
}

# The image registry (Debian's docker-registry, distribution 2.8) on the
# bridge gateway, so pods and the kubelet reach it; plain http, no auth,
# deletes enabled (prune Jobs delete manifests). Its data lives in the state
# dir and goes with `down`.
write_registry_config() {
    mkdir -p "$STATE_DIR/registry/data"
    cat > "$STATE_DIR/registry/config.yml" <<YML
version: 0.1
log:
  level: info
  fields: {service: registry}
storage:
  filesystem: {rootdirectory: $STATE_DIR/registry/data}
  delete: {enabled: true}
http:
  addr: $REGISTRY
  headers:
    X-Content-Type-Options: [nosniff]
YML
}

start_registry() {
    write_registry_config
    start registry docker-registry serve "$STATE_DIR/registry/config.yml"
    wait_for registry 30 curl -sf "http://$REGISTRY/v2/"
}

write_containerd_config() {
    local dir="$STATE_DIR/containerd"
    mkdir -p "$dir" "$STATE_DIR/cni/net.d" "$GANTRY_E2E_DIR/run"
    containerd config default > "$dir/config.toml.default"
    python3 - "$dir/config.toml.default" "$dir/config.toml" <<PY
import re, sys
src, dst = sys.argv[1], sys.argv[2]
text = open(src).read()
def setkey(text, key, value):
    new, n = re.subn(r'(?m)^(\s*)%s = .*$' % re.escape(key), lambda m: '%s%s = %s' % (m.group(1), key, value), text, count=1)
    if n != 1:
        sys.exit('containerd config: %s not found' % key)
    return new
text = setkey(text, 'root', '"$GANTRY_E2E_DIR/containerd/root"')
text = setkey(text, 'state', '"$GANTRY_E2E_DIR/run/containerd-state"')
text = re.sub(r'(?m)^(\s*)address = "/run/containerd/containerd.sock"', r'\1address = "$CONTAINERD_SOCK"', text, count=1)
text = setkey(text, 'sandbox_image', '"docker.io/$PAUSE_IMAGE"')
text = setkey(text, 'bin_dir', '"/usr/lib/cni"')
text = setkey(text, 'conf_dir', '"$STATE_DIR/cni/net.d"')
# These machines withhold CAP_SYS_RESOURCE: a negative oom_score_adj kills the sandbox.
text = setkey(text, 'restrict_oom_score_adj', 'true')
text = setkey(text, 'SystemdCgroup', 'false')
# Registry hosts (certs.d/HOST:PORT/hosts.toml): the test bed's registry over plain http.
text = setkey(text, 'config_path', '"$dir/certs.d"')
# A second runtime handler, mapped to runc, so RuntimeClass handlers
# (KataInstall's kata-<shim>) are exercised for real without Kata.
marker = '        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]'
assert marker in text, 'runc runtime section not found'
text = text.replace(marker, '''        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-qemu]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-qemu.options]
            SystemdCgroup = false

''' + marker, 1)
open(dst, 'w').write(text)
PY
    mkdir -p "$dir/certs.d/$REGISTRY"
    cat > "$dir/certs.d/$REGISTRY/hosts.toml" <<TOML
server = "http://$REGISTRY"

[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve", "push"]
TOML
    cat > "$STATE_DIR/cni/net.d/10-gantry.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "gantry-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY_IP"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE_DIR/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
CNI
}

write_kubelet_config() {
    mkdir -p "$STATE_DIR/kubelet" "$STATE_DIR/manifests"
    cat > "$STATE_DIR/kubelet/config.yaml" <<KCFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
cgroupDriver: cgroupfs
failSwapOn: false
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
staticPodPath: $STATE_DIR/manifests
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
maxPods: 250
serializeImagePulls: false
KCFG
}

start_node() {
    local bin="$1"
    start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$KUBECONFIG_PATH" --leader-elect=false \
        --bind-address 127.0.0.1 --kube-api-qps 200 --kube-api-burst 400 --v 1

    start_registry

    local config="$STATE_DIR/containerd/config.toml" before=""
    if [ -f "$config" ]; then before="$(sha256sum < "$config")"; fi
    write_containerd_config
    if running containerd && [ "$before" != "$(sha256sum < "$config")" ]; then
        # containerd reads its config only at start; containers (their shims) and the kubelet survive this.
        log "containerd's config changed; restarting containerd"
        stop_pid containerd
    fi
    start containerd containerd --config "$config"
    wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
    build_and_import_node_images

    write_kubelet_config
    start kubelet "$bin/kubelet" --kubeconfig "$KUBECONFIG_PATH" --config "$STATE_DIR/kubelet/config.yaml" \
        --container-runtime remote --container-runtime-endpoint "unix://$CONTAINERD_SOCK" \
        --hostname-override localhost --root-dir "$STATE_DIR/kubelet/root" --cert-dir "$STATE_DIR/kubelet/pki" \
        --node-ip "$GATEWAY_IP" --v 1
    start kube-proxy "$bin/kube-proxy" --kubeconfig "$KUBECONFIG_PATH" --proxy-mode iptables \
        --cluster-cidr "$POD_CIDR" --hostname-override localhost --conntrack-max-per-core 0 \
        --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256 --v 1
    wait_for "node localhost" 120 kubectl_e2e wait --for=condition=Ready node/localhost --timeout=1s
}

cmd_up() {
    local tier="${1:-node}" bin
    case "$tier" in control-plane|node) ;; *) die "unknown tier '$tier' (control-plane or node)";; esac
    require_root
    if already_up "$tier"; then
        log "cluster already up ($tier); KUBECONFIG=$KUBECONFIG_PATH"
        return
    fi
    mkdir -p "$STATE_DIR" "$LOG_DIR" "$PID_DIR"
    ensure_packages
    bin="$("$E2E_DIR/build-k8s.sh")"
    ensure_pki
    ensure_bridge
    start_control_plane "$bin"
    if [ "$tier" = node ]; then start_node "$bin"; fi
    echo "$tier" > "$STATE_DIR/tier"
    log "cluster up ($tier); KUBECONFIG=$KUBECONFIG_PATH"
}

# already_up TIER: every component of TIER runs and the apiserver answers.
# A running node tier also satisfies a control-plane request.
already_up() {
    local want="$1" name components="$CONTROL_PLANE"
    [ "$want" = node ] && components="$CONTROL_PLANE $NODE"
    for name in $components; do running "$name" || return 1; done
    kubectl_e2e get --raw /readyz >/dev/null 2>&1
}

stop_pid() {
    local name="$1" pid i
    pid="$(pid_of "$name")"
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_DIR/$name.pid"
}

cmd_down() {
    require_root
    stop_pid kubelet
    stop_pid kube-proxy
    if running containerd; then
        # Containers outlive containerd (their shims keep running): stop them first.
        local c
        for c in $(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
            ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
        done
        sleep 1
        for c in $(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
            ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true
        done
    fi
    stop_pid containerd
    stop_pid registry
    pkill -KILL -f "containerd-shim.*-address $CONTAINERD_SOCK" 2>/dev/null || true
    local name
    for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_pid "$name"; done
    # kube-proxy's iptables chains, then the mounts pods left behind.
    local bin; bin="$(k8s_bin_dir)"
    [ -x "$bin/kube-proxy" ] && "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
    findmnt -rn -o TARGET | grep -E "^$GANTRY_E2E_DIR/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    ip link del cni0 2>/dev/null || true
    rm -rf "$STATE_DIR" "$GANTRY_E2E_DIR/containerd" "$GANTRY_E2E_DIR/run" "$PKI_DIR" "$KUBECONFIG_PATH"
    log "cluster down (logs kept in $LOG_DIR)"
}

# cmd_restart NAME: stops one component (SIGTERM, then SIGKILL) and starts it
# again with everything it needs, as a crash and a supervisor would; for
# fault tests. The state (etcd's data) stays.
cmd_restart() {
    local name="$1" tier
    require_root
    case " $CONTROL_PLANE $NODE " in *" $name "*) ;; *) die "unknown component '$name'";; esac
    tier="$(cat "$STATE_DIR/tier" 2>/dev/null || echo node)"
    stop_pid "$name"
    log "restarting $name"
    local bin; bin="$("$E2E_DIR/build-k8s.sh")"
    start_control_plane "$bin"
    if [ "$tier" = node ]; then start_node "$bin"; fi
    log "$name restarted"
}

cmd_status() {
    local name rc=0 tier
    tier="$(cat "$STATE_DIR/tier" 2>/dev/null || echo none)"
    echo "tier: $tier"
    for name in $CONTROL_PLANE $NODE; do
        if running "$name"; then echo "$name: running (pid $(pid_of "$name"))"
        elif [ -f "$PID_DIR/$name.pid" ]; then echo "$name: DEAD (see $LOG_DIR/$name.log)"; rc=1
        else echo "$name: not started"; fi
    done
    if [ -f "$KUBECONFIG_PATH" ] && kubectl_e2e get --raw /readyz >/dev/null 2>&1; then
        echo "apiserver: ready at https://$GATEWAY_IP:$APISERVER_PORT"
        kubectl_e2e get nodes --no-headers 2>/dev/null | sed 's/^/node: /'
    else
        echo "apiserver: not answering"; rc=1
    fi
    if running registry; then
        if curl -sf "http://$REGISTRY/v2/" >/dev/null 2>&1; then echo "registry: ready at http://$REGISTRY"
        else echo "registry: not answering at http://$REGISTRY"; rc=1; fi
    fi
    return $rc
}

cmd_logs() {
    local f
    for f in "$LOG_DIR"/*.log; do
        [ -f "$f" ] || continue
        echo "===== $f"; tail -n "${LINES_PER_LOG:-40}" "$f"
    done
}

case "${1:-}" in
    up) cmd_up "${2:-node}" ;;
    down) cmd_down ;;
    restart) cmd_restart "${2:?usage: cluster.sh restart COMPONENT}" ;;
    status) cmd_status ;;
    kubeconfig) echo "$KUBECONFIG_PATH" ;;
    logs) cmd_logs ;;
    *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
