# Shared settings for the e2e scripts. Sourced, never run.
# Everything the cluster keeps lives under GANTRY_E2E_DIR (state, logs, pids);
# everything that is expensive to make lives under GANTRY_CACHE and survives `down`.
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$E2E_DIR/.." && pwd)"
GANTRY_CACHE="${GANTRY_CACHE:-/var/cache/gantry}"
GANTRY_E2E_DIR="${GANTRY_E2E_DIR:-/var/lib/gantry-e2e}"
STATE_DIR="$GANTRY_E2E_DIR/state"
LOG_DIR="$GANTRY_E2E_DIR/logs"
PID_DIR="$GANTRY_E2E_DIR/pids"
PKI_DIR="$GANTRY_E2E_DIR/pki"
KUBECONFIG_PATH="$GANTRY_E2E_DIR/kubeconfig"

# The pod network. The bridge gateway doubles as the apiserver's advertise
# address, so pods reach the `kubernetes` Service like on any cluster.
POD_CIDR="${GANTRY_POD_CIDR:-10.88.0.0/16}"
GATEWAY_IP="${GANTRY_GATEWAY_IP:-10.88.0.1}"
SERVICE_CIDR="${GANTRY_SERVICE_CIDR:-10.96.0.0/16}"
APISERVER_PORT=6443
# The test bed's image registry (plain http), on the gateway like the apiserver.
REGISTRY="$GATEWAY_IP:${GANTRY_REGISTRY_PORT:-5000}"
ETCD_PORT=2379

K8S_SRC_VERSION_PREFIX="1.20"

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() { [ "$(id -u)" = 0 ] || die "the local cluster needs root (containerd, kubelet, iptables)"; }

# k8s_bin_dir prints the cache folder for the Kubernetes binaries of the
# Debian source version (and the patch set) that apt currently offers.
k8s_bin_dir() {
    local version patch_sum
    version="$(cat "$GANTRY_CACHE/k8s-version" 2>/dev/null || true)"
    [ -n "$version" ] || version="$(apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/{print $2; exit}')"
    patch_sum="$(cat "$E2E_DIR"/patches/*.patch | sha256sum | cut -c1-12)"
    printf '%s/k8s-%s-%s/bin\n' "$GANTRY_CACHE" "$version" "$patch_sum"
}

CONTAINERD_SOCK="$GANTRY_E2E_DIR/run/containerd.sock"
