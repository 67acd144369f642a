#!/usr/bin/env bash
# Installs what the tests and the demo need, and prints the path of the Python venv to use.
#  - missing Debian packages (libvirt, QEMU, qemu-img, dnsmasq...): tests/lab/install-deps.sh
#  - a venv with ansible-core, ansible-lint, pytest and the collection's Python requirements,
#    cached under $VIRTOPS_CACHE_DIR keyed by the requirement files and the Python version
#  - ansible-test's pip bootstrap script, replaced by an offline stand-in
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/tools/venv-lib.sh
. "$root/tests/tools/venv-lib.sh"

if [ "${VIRTOPS_SKIP_SYSTEM_DEPS:-0}" != 1 ]; then
    bash "$root/tests/lab/install-deps.sh" >&2
fi

# keyed by both requirement files (tests/requirements.txt includes ../requirements.txt)
venv=$(cached_venv venv "$root/tests/requirements.txt" "$root/requirements.txt" "$root/tests/requirements.txt")

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
