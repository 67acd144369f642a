#!/usr/bin/env bash
# Copies the collection (tracked and new, not ignored files) to BUILD/ansible_collections/virtops/libvirt,
# the layout ansible-test and Python imports of ansible_collections.* need.  Prints that path.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: stage.sh BUILD_DIR}
dest="$build/ansible_collections/virtops/libvirt"
rm -rf "$dest"
mkdir -p "$dest"
cd "$root"
if git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
        [ -e "$f" ] && printf '%s\0' "$f"
    done | tar --null -T - -cf - | tar -xf - -C "$dest"
else
    tar --exclude=./.build --exclude=./tests/output -cf - . | tar -xf - -C "$dest"
fi
echo "$dest"
