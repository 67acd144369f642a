#!/usr/bin/env bash
# Installs what the tests and the demo need, and prints the path of the Python venv to use.
#  - missing Debian packages (libvirt, QEMU, qemu-img, dnsmasq...): tests/lab/install-deps.sh
#  - a venv with ansible-core, ansible-lint, pytest and the collection's Python requirements,
#    cached under $VIRTOPS_CACHE_DIR keyed by the requirement files and the Python version
#  - ansible-test's pip bootstrap script, replaced by an offline stand-in
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${VIRTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtops-libvirt}
python=${PYTHON:-python3}

log() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ "${VIRTOPS_SKIP_SYSTEM_DEPS:-0}" != 1 ]; then
    bash "$root/tests/lab/install-deps.sh" >&2
fi

pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$(cat "$root/requirements.txt" "$root/tests/requirements.txt" <(echo "$pyver") | sha256sum | cut -c1-16)
venv="$cache/venv-py$pyver-$key"
if [ ! -e "$venv/.complete" ]; then
    log "creating $venv (first run on this machine; takes a few minutes)"
    rm -rf "$venv"
    mkdir -p "$cache"
    "$python" -m venv "$venv"
    if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -r "$root/tests/requirements.txt"; } \
            > "$cache/pip-install.log" 2>&1; then
        grep -v '^WARNING: Location' "$cache/pip-install.log" >&2
        log "pip install failed (log: $cache/pip-install.log)"
        exit 1
    fi
    touch "$venv/.complete"
fi

# ansible-test downloads get-pip from a host we cannot reach; put the offline stand-in where it looks.
pip_ver=$("$venv/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
m = re.search(r"pip='([0-9.]+)'", src.read_text())
print(m.group(1) if m else "")
PY
)
if [ -n "$pip_ver" ]; then
    mkdir -p "$HOME/.ansible/test/cache"
    install -m 0644 "$root/tests/tools/get_pip_standin.py" "$HOME/.ansible/test/cache/get_pip_${pip_ver//./_}.py"
fi
echo "$venv"
