#!/bin/sh
# A stand-in for kata-deploy in tests (image local/kata-installer:1). Same
# interface: NODE_NAME, SHIMS (space-separated), DEFAULT_SHIM, and the mode
# `install` or `cleanup` as argument. It only writes marker files under the
# host's /opt/kata (mounted at the same path), then sleeps like kata-deploy.
#   install: /opt/kata/gantry-installed (node, shims, default shim), one
#            /opt/kata/bin/containerd-shim-kata-<shim>-v2 per shim and
#            /opt/kata/bin/containerd-shim-kata-v2 (the operator's readiness
#            probe tests for it). Fails with a termination message when SHIMS
#            holds a shim other than qemu, clh or fc.
#            Where the operator's config grants host access (kataInstaller),
#            the host directory /etc/gantry-e2e-runtime is mounted, as
#            kata-deploy gets /etc/containerd: there it writes
#            gantry-kata-runtime with the node, its effective capabilities
#            (all of them when privileged) and the name of PID 1 (the host's
#            init with hostPID, itself otherwise).
#   cleanup: removes those files (the probe then tests for their absence).
mode="${1:-install}"
root=/opt/kata
runtime_dir=/etc/gantry-e2e-runtime

fail() {
    echo "$*" > /dev/termination-log
    echo "$*" >&2
    exit 1
}

case "$mode" in
install)
    for shim in $SHIMS; do
        case "$shim" in
        qemu | clh | fc) ;;
        *) fail "kata-installer: unknown shim \"$shim\" in SHIMS=\"$SHIMS\" (known: qemu clh fc)" ;;
        esac
    done
    mkdir -p "$root/bin" || fail "kata-installer: cannot create $root/bin"
    printf 'node=%s\nshims=%s\ndefault=%s\n' "$NODE_NAME" "$SHIMS" "$DEFAULT_SHIM" > "$root/gantry-installed"
    for shim in $SHIMS; do
        echo "$shim" > "$root/bin/containerd-shim-kata-$shim-v2"
    done
    if [ -d "$runtime_dir" ]; then
        capeff="$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
        printf 'node=%s\ncapeff=%s\npid1=%s\n' "$NODE_NAME" "$capeff" "$(cat /proc/1/comm)" \
            > "$runtime_dir/gantry-kata-runtime" || fail "kata-installer: cannot write $runtime_dir"
    fi
    echo "installed by the stand-in kata-installer" > "$root/bin/containerd-shim-kata-v2"
    ;;
cleanup)
    rm -f "$root/gantry-installed" "$root/bin/containerd-shim-kata-v2" "$root"/bin/containerd-shim-kata-*-v2
    if [ -d "$runtime_dir" ]; then rm -f "$runtime_dir/gantry-kata-runtime"; fi
    ;;
*)
    fail "kata-installer: unknown mode \"$mode\" (install or cleanup)"
    ;;
esac
echo "kata-installer: $mode done on node $NODE_NAME (shims: $SHIMS)"
# Sleep like kata-deploy; leave at once when the pod is deleted.
trap 'exit 0' TERM INT
sleep 2147483647 &
wait
