#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kube-proxy from Debian's `kubernetes` source package, with the reflect2
# Go 1.18+ fix applied, into a cache folder outside the work tree.
# A second run finds the cache and costs nothing. Prints the bin folder.
source "$(dirname "$0")/lib/common.sh"

WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy"
BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"

ensure_deb_src() {
    if apt-cache showsrc kubernetes >/dev/null 2>&1 && [ -n "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
        return
    fi
    log "adding a deb-src entry for the Debian archive"
    cat > /etc/apt/sources.list.d/gantry-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
}

ensure_deb_src
mkdir -p "$GANTRY_CACHE"
version="$(apt-cache showsrc kubernetes | awk '/^Version:/{print $2; exit}')"
case "$version" in *"$K8S_SRC_VERSION_PREFIX"*) ;; *) die "Debian offers kubernetes $version, expected $K8S_SRC_VERSION_PREFIX.x";; esac
echo "$version" > "$GANTRY_CACHE/k8s-version"
bin_dir="$(k8s_bin_dir)"

all_present=1
for b in $BINARIES; do [ -x "$bin_dir/$b" ] || all_present=0; done
if [ "$all_present" = 1 ]; then
    log "Kubernetes binaries cached in $bin_dir"
    echo "$bin_dir"
    exit 0
fi

work="$GANTRY_CACHE/build"
rm -rf "$work"
mkdir -p "$work"
cd "$work"
log "fetching the kubernetes $version source package"
apt-get source -qq --download-only kubernetes >/dev/null 2>&1 || apt-get source --download-only kubernetes
dpkg-source -x ./kubernetes_*.dsc src >/dev/null
cd src

log "applying the reflect2 map-iterator fix"
patch -p1 --forward < "$E2E_DIR/patches/reflect2-go118-mapiterinit.patch" >/dev/null
grep -q 'func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it \*hiter)' \
    vendor/github.com/modern-go/reflect2/unsafe_link.go || die "reflect2 fix did not apply (mapiterinit signature)"
grep -q 'checkBucket uintptr' vendor/github.com/modern-go/reflect2/unsafe_link.go \
    || die "reflect2 fix did not apply (hiter layout)"
grep -q 'mapiterinit(type2.rtype, \*(\*unsafe.Pointer)(obj), &it)' vendor/github.com/modern-go/reflect2/unsafe_map.go \
    || die "reflect2 fix did not apply (caller-allocated iterator)"

log "building $WHAT (about 8 minutes on 2 cores)"
mkdir -p .go/src/k8s.io
ln -sfn "$PWD" .go/src/k8s.io/kubernetes
export GOPATH="$PWD/.go" CGO_ENABLED=0 GOFLAGS="" GO111MODULE=auto
export KUBE_GIT_VERSION="v1.20.2" KUBE_GIT_TREE_STATE=clean
make WHAT="$WHAT" > "$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; die "kubernetes build failed (log: $work/make.log)"; }

mkdir -p "$bin_dir.tmp"
for b in $BINARIES; do cp "_output/local/bin/linux/amd64/$b" "$bin_dir.tmp/"; done
rm -rf "$bin_dir" && mv "$bin_dir.tmp" "$bin_dir"
cd / && rm -rf "$work"
log "Kubernetes binaries built into $bin_dir"
echo "$bin_dir"
