# Builds the local images the cluster needs as docker-archive tarballs and
# imports them into containerd. Sourced by cluster.sh and images.sh.

IMAGE_CACHE="$GANTRY_CACHE/images"
PAUSE_IMAGE="local/pause:3.4"
BUSYBOX_IMAGE="local/busybox:1"
KATA_INSTALLER_IMAGE="local/kata-installer:1"

# docker_archive NAME:TAG ROOTFS_DIR OUT_TAR [CMD_JSON] [USER] [ENTRYPOINT_JSON]
# Packs ROOTFS_DIR as a single-layer docker-archive image.
docker_archive() {
    local ref="$1" rootfs="$2" out="$3" cmd="${4:-[\"sh\"]}" user="${5:-}" entrypoint="${6:-null}"
    local work layer_sum config_sum
    work="$(mktemp -d)"
    tar -C "$rootfs" --numeric-owner --sort=name --mtime='2000-01-01' -cf "$work/layer.tar" .
    layer_sum="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
    mkdir "$work/$layer_sum"
    mv "$work/layer.tar" "$work/$layer_sum/layer.tar"
    cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"2000-01-01T00:00:00Z",
 "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":$entrypoint,"Cmd":$cmd,"User":"$user","WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$layer_sum"]}}
JSON
    config_sum="$(sha256sum "$work/config.json" | cut -d' ' -f1)"
    mv "$work/config.json" "$work/$config_sum.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' \
        "$config_sum" "$ref" "$layer_sum" > "$work/manifest.json"
    tar -C "$work" -cf "$out.tmp" manifest.json "$config_sum.json" "$layer_sum"
    mv "$out.tmp" "$out"
    rm -rf "$work"
}

build_pause_image() {
    local out="$IMAGE_CACHE/pause.tar" rootfs
    [ -s "$out" ] && [ "$out" -nt "$E2E_DIR/images/pause.c" ] && return
    log "building $PAUSE_IMAGE"
    rootfs="$(mktemp -d)"
    gcc -Os -static -o "$rootfs/pause" "$E2E_DIR/images/pause.c"
    docker_archive "$PAUSE_IMAGE" "$rootfs" "$out" '["/pause"]'
    rm -rf "$rootfs"
}

# busybox_rootfs DIR: a busybox-static root with every applet linked and a
# passwd that knows root and nobody (65534).
busybox_rootfs() {
    local dir="$1" applet
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/www,home}
    chmod 1777 "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    for applet in $("$dir/bin/busybox" --list); do
        [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/sh\n' > "$dir/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' > "$dir/etc/group"
}

build_busybox_image() {
    local out="$IMAGE_CACHE/busybox.tar" rootfs
    [ -s "$out" ] && [ "$out" -nt "$E2E_DIR/lib/images.sh" ] && return
    log "building $BUSYBOX_IMAGE"
    rootfs="$(mktemp -d)"
    busybox_rootfs "$rootfs"
    docker_archive "$BUSYBOX_IMAGE" "$rootfs" "$out"
    rm -rf "$rootfs"
}

# kata_installer_image_tar: where the stand-in installer's archive is cached,
# named by what it is made from (not by file times: two checkouts share the cache).
kata_installer_image_tar() {
    local key
    key="$({
        declare -f build_kata_installer_image busybox_rootfs docker_archive
        cat "$E2E_DIR/images/kata-installer.sh"
    } | sha256sum | cut -c1-16)"
    echo "$IMAGE_CACHE/kata-installer-$key.tar"
}

# build_kata_installer_image: busybox plus e2e/images/kata-installer.sh, a
# stand-in for kata-deploy that only writes marker files (see the script).
build_kata_installer_image() {
    local out rootfs script="$E2E_DIR/images/kata-installer.sh"
    out="$(kata_installer_image_tar)"
    [ -s "$out" ] && return
    log "building $KATA_INSTALLER_IMAGE"
    rootfs="$(mktemp -d)"
    busybox_rootfs "$rootfs"
    mkdir -p "$rootfs/usr/local/bin"
    install -m 0755 "$script" "$rootfs/usr/local/bin/kata-installer"
    docker_archive "$KATA_INSTALLER_IMAGE" "$rootfs" "$out" '["install"]' "" '["/usr/local/bin/kata-installer"]'
    rm -rf "$rootfs"
    # Older builds of it are of no further use.
    find "$IMAGE_CACHE" -maxdepth 1 -name 'kata-installer*.tar' ! -path "$out" -delete
}

# import_image TAR REF: loads an archive into containerd's CRI namespace,
# unless containerd already has REF from that same archive.
import_image() {
    local tar="$1" ref="docker.io/$2" stamp="$GANTRY_E2E_DIR/run/imported-$(basename "$1")"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$tar" ] \
        && grep -qx "$ref" <<<"$(ctr --address "$CONTAINERD_SOCK" -n k8s.io images ls -q)"; then
        return
    fi
    ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$tar" >/dev/null
    touch "$stamp"
}

BUILDER_IMAGE="local/gantry-builder:1"
# Debian packages in the builder image (debootstrap --include; it does not
# resolve virtual packages: netavark is the container-network-stack skopeo's
# golang-github-containers-common wants).
BUILDER_PACKAGES="skopeo,umoci,netavark"
DEBIAN_MIRROR="${GANTRY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# builder_rootfs DIR: a minimal Debian with skopeo and umoci, the busybox
# image as an OCI layout (the base gantry-build-image builds on), the
# builder scripts, and a non-root user `builder` (65532) to run them.
builder_rootfs() {
    local dir="$1" suite
    suite="$(. /etc/os-release && echo "$VERSION_CODENAME")"
    if ! debootstrap --variant=minbase --include="$BUILDER_PACKAGES" "$suite" "$dir" "$DEBIAN_MIRROR" \
        > "$IMAGE_CACHE/builder-debootstrap.log" 2>&1; then
        tail -n 20 "$IMAGE_CACHE/builder-debootstrap.log" >&2
        die "debootstrap of the builder image failed (log: $IMAGE_CACHE/builder-debootstrap.log)"
    fi
    # Smaller: no package lists or caches, docs, manuals or translations; no device nodes (the runtime makes /dev).
    rm -rf "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/var/log/* "$dir"/dev/* \
        "$dir"/usr/share/{doc,man,info,locale,lintian}
    mkdir -p "$dir/usr/share/gantry" "$dir/home/builder"
    skopeo copy --quiet "docker-archive:$IMAGE_CACHE/busybox.tar" "oci:$dir/usr/share/gantry/busybox:1"
    chmod -R a+rX "$dir/usr/share/gantry"
    install -m 0755 "$E2E_DIR"/images/builder/gantry-* "$dir/usr/local/bin/"
    echo 'builder:x:65532:65532:gantry builder:/home/builder:/bin/sh' >> "$dir/etc/passwd"
    echo 'builder:x:65532:' >> "$dir/etc/group"
    chown 65532:65532 "$dir/home/builder"
}

# builder_image_tar: the cache path of the builder image, keyed by its
# package list, suite, recipe, scripts and the busybox base.
builder_image_tar() {
    local key
    key="$({
        echo "$BUILDER_PACKAGES $(. /etc/os-release && echo "$VERSION_CODENAME")"
        declare -f builder_rootfs docker_archive
        cat "$E2E_DIR"/images/builder/gantry-*
        tar -xOf "$IMAGE_CACHE/busybox.tar" manifest.json  # names its config and layer by digest
    } | sha256sum | cut -c1-16)"
    echo "$IMAGE_CACHE/gantry-builder-$key.tar"
}

build_builder_image() {
    local out rootfs
    out="$(builder_image_tar)"
    [ -s "$out" ] && return
    log "building $BUILDER_IMAGE (debootstrap $BUILDER_PACKAGES; about a minute)"
    # Leftovers of an interrupted build (not one that may still be running).
    find "$IMAGE_CACHE" -maxdepth 1 -name 'builder-rootfs.*' -mmin +60 -exec rm -rf {} +
    rootfs="$(mktemp -d "$IMAGE_CACHE/builder-rootfs.XXXXXX")"
    builder_rootfs "$rootfs"
    docker_archive "$BUILDER_IMAGE" "$rootfs" "$out" '["gantry-build-image"]' "65532:65532"
    rm -rf "$rootfs"
    # Older builds of it are of no further use.
    find "$IMAGE_CACHE" -maxdepth 1 -name 'gantry-builder-*.tar' ! -path "$out" -delete
}

build_and_import_node_images() {
    mkdir -p "$IMAGE_CACHE"
    build_pause_image
    build_busybox_image
    build_builder_image
    build_kata_installer_image
    import_image "$IMAGE_CACHE/pause.tar" "$PAUSE_IMAGE"
    import_image "$IMAGE_CACHE/busybox.tar" "$BUSYBOX_IMAGE"
    import_image "$(builder_image_tar)" "$BUILDER_IMAGE"
    import_image "$(kata_installer_image_tar)" "$KATA_INSTALLER_IMAGE"
}

OPERATOR_IMAGE="local/gantry:dev"

# build_operator_image: the release binary, linked statically, on a minimal
# rootfs with a non-root user (65532), like images/Dockerfile.
build_operator_image() {
    local out="$IMAGE_CACHE/gantry.tar" rootfs target="$REPO_ROOT/target/static"
    log "building the operator release binary (static)"
    (cd "$REPO_ROOT" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target" \
        cargo build --release --quiet --bin gantry --target x86_64-unknown-linux-gnu)
    rootfs="$(mktemp -d)"
    mkdir -p "$rootfs"/{usr/local/bin,etc/ssl/certs,tmp}
    chmod 1777 "$rootfs/tmp"
    # Root certificates, for HTTPS notification endpoints (distroless has them too).
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
    cp "$target/x86_64-unknown-linux-gnu/release/gantry" "$rootfs/usr/local/bin/gantry"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$rootfs/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
    docker_archive "$OPERATOR_IMAGE" "$rootfs" "$out" '["run","--log-format","json"]' "65532:65532" '["/usr/local/bin/gantry"]'
    rm -rf "$rootfs"
    import_image "$out" "$OPERATOR_IMAGE"
}
