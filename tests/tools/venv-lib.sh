# shellcheck shell=bash
# Sourced by bootstrap.sh (the tools venv) and docs-venv.sh (the docs venv): one way to make a cached venv.
#
# cached_venv NAME REQUIREMENTS [KEY_FILE...]
#   Prints the path of a venv holding `pip install -r REQUIREMENTS`, made the first time as
#   $VIRTOPS_CACHE_DIR/NAME-pyX.Y-KEY, where KEY is the hash of the KEY_FILEs (default: REQUIREMENTS)
#   and the Python version: a changed requirement file gives a new venv, an unchanged one is reused.
#   Two runs at once: one makes it, the other waits (flock) and reuses it.
cache=${VIRTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtops-libvirt}
python=${PYTHON:-python3}

cached_venv() {
    local name=$1 requirements=$2 pyver key venv pip_log
    shift 2
    [ $# -gt 0 ] || set -- "$requirements"
    pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    key=$(cat "$@" <(echo "$pyver") | sha256sum | cut -c1-16)
    venv="$cache/$name-py$pyver-$key"
    pip_log="$cache/$name-pip-install.log"
    mkdir -p "$cache"
    (
        flock 9
        if [ ! -e "$venv/.complete" ]; then
            printf '[%s] creating %s (first run on this machine; takes a few minutes)\n' "$name" "$venv" >&2
            rm -rf "$venv"
            "$python" -m venv "$venv"
            if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -r "$requirements"; } \
                    > "$pip_log" 2>&1; then
                grep -v '^WARNING: Location' "$pip_log" >&2
                printf '[%s] pip install failed (log: %s)\n' "$name" "$pip_log" >&2
                exit 1
            fi
            touch "$venv/.complete"
        fi
    ) 9>"$cache/$name.lock" || return 1
    echo "$venv"
}
