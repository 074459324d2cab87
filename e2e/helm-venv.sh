#!/usr/bin/env bash
# Makes the Python virtualenv that e2e/helm.py runs in: helm-python-sdk, which carries Helm's
# own library, pinned in e2e/helm-requirements.txt. Idempotent and quick when the venv already
# holds exactly those requirements (a stamp records their checksum). Installs Debian's
# python3-venv when python3 cannot make a venv (a fresh Debian 12 machine).
#
#   e2e/helm-venv.sh            # prints the venv's python on stdout
#
# Where: $GANTRY_HELM_VENV, else $GANTRY_CACHE/helm-venv (/var/cache/gantry/helm-venv);
# e2e/helm.py and tests/helm/mod.rs look in the same place.
source "$(dirname "$0")/lib/common.sh"

HELM_VENV="${GANTRY_HELM_VENV:-$GANTRY_CACHE/helm-venv}"
REQUIREMENTS="$E2E_DIR/helm-requirements.txt"
PYTHON="${PYTHON:-python3}"
STAMP="$HELM_VENV/.gantry-requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"

venv_is_current() {
    [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && "$HELM_VENV/bin/python" -c 'import helm_python' 2>/dev/null
}

mkdir -p "$(dirname "$HELM_VENV")"
# One maker at a time (two test targets may ask at once); the others wait and find it made.
exec 9>"$HELM_VENV.lock"
flock 9

if ! venv_is_current; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install python3 (Debian: apt-get install python3-venv)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "$PYTHON is older than 3.10, which helm-python-sdk needs"
    if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        command -v apt-get >/dev/null || die "$PYTHON cannot make a virtualenv (no ensurepip) and apt-get is missing: install python3-venv"
        log "installing python3-venv (apt-get)"
        apt-get install -y -qq python3-venv >/dev/null \
            || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; } \
            || die "apt-get install python3-venv failed"
    fi
    log "making $HELM_VENV (helm-python-sdk, about 75 MB)"
    rm -rf "$HELM_VENV"
    "$PYTHON" -m venv "$HELM_VENV"
    "$HELM_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --require-hashes -r "$REQUIREMENTS" || die "pip could not install $REQUIREMENTS into $HELM_VENV"
    "$HELM_VENV/bin/python" -c 'import helm_python' || die "helm_python does not import in $HELM_VENV"
    # Written last: an interrupted install is redone next time.
    echo "$want" > "$STAMP"
fi
echo "$HELM_VENV/bin/python"
