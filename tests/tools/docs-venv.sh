#!/usr/bin/env bash
# Prints the path of the docs venv: antsibull-docs, Sphinx, sphinx-ansible-theme and ansible-core from
# docs/requirements.txt, for `make docs` and the docs lint of `make lint`. Made from PyPI the first time,
# then cached under $VIRTOPS_CACHE_DIR keyed by that file and the Python version, like the tools venv of
# bootstrap.sh (and apart from it, so that changing one does not rebuild the other).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${VIRTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtops-libvirt}
python=${PYTHON:-python3}
requirements="$root/docs/requirements.txt"

log() { printf '[docs-venv] %s\n' "$*" >&2; }

pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$(cat "$requirements" <(echo "$pyver") | sha256sum | cut -c1-16)
venv="$cache/docs-venv-py$pyver-$key"
mkdir -p "$cache"
exec 9>"$cache/docs-venv.lock"
flock 9   # two make runs at once: one builds, the other waits and uses it
if [ ! -e "$venv/.complete" ]; then
    log "creating $venv (first run on this machine; takes a minute or two)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -r "$requirements"; } \
            > "$cache/docs-pip-install.log" 2>&1; then
        grep -v '^WARNING: Location' "$cache/docs-pip-install.log" >&2
        log "pip install failed (log: $cache/docs-pip-install.log)"
        exit 1
    fi
    touch "$venv/.complete"
fi
echo "$venv"
