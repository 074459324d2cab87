#!/usr/bin/env bash
# Builds the operator image (local/gantry:dev) from this checkout and imports
# it into the running local cluster's containerd.
source "$(dirname "$0")/lib/common.sh"
source "$E2E_DIR/lib/images.sh"
require_root
mkdir -p "$IMAGE_CACHE"
build_operator_image
log "imported $OPERATOR_IMAGE"
