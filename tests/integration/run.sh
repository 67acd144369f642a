#!/usr/bin/env bash
# Runs ansible-test style integration targets (tests/integration/targets/NAME/tasks/main.yml)
# against the real lab, with the collection installed from its built tarball.
#
#   VENV=... COLLECTIONS_PATH=... tests/integration/run.sh [TARGET...]
#
# Each target runs as a role in a playbook written to a scratch directory outside the repository,
# against the lab's hypervisor inventory (hosts lab1..labN, group 'hypervisors').  A target's
# `aliases` file may say `lab_hosts/N` (it needs N hypervisors), `needs/guest_image` (it boots the
# lab's Debian guest image: built once per machine by tests/lab/guest-image.sh and passed to the
# target as the variable `guest_image_dir`) or `disabled`.
# KEEP_LAB=1 leaves the lab running afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${VENV:?set VENV to the tools venv (make integration does)}"
: "${COLLECTIONS_PATH:?set COLLECTIONS_PATH to where the collection is installed}"
lab="$root/tests/lab/lab.sh"
targets_dir="$root/tests/integration/targets"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for dir in "$targets_dir"/*/; do
        name=$(basename "$dir")
        if [ -f "$dir/aliases" ] && grep -qx 'disabled' "$dir/aliases"; then
            continue
        fi
        targets+=("$name")
    done
fi
[ ${#targets[@]} -gt 0 ] || { echo "no integration targets found" >&2; exit 1; }

hosts_needed=1
extra_vars=()
for t in "${targets[@]}"; do
    if grep -qx 'needs/guest_image' "$targets_dir/$t/aliases" 2>/dev/null && [ ${#extra_vars[@]} -eq 0 ]; then
        image_dir=$("$root/tests/lab/guest-image.sh" build)
        extra_vars=(-e "guest_image_dir=$image_dir")
    fi
    [ -d "$targets_dir/$t" ] || { echo "unknown target: $t" >&2; exit 1; }
    n=$(sed -n 's#^lab_hosts/\([0-9]\+\)$#\1#p' "$targets_dir/$t/aliases" 2>/dev/null | head -n1)
    if [ -n "$n" ] && [ "$n" -gt "$hosts_needed" ]; then hosts_needed=$n; fi
done

scratch=$(mktemp -d /tmp/virtops-integration.XXXXXX)
cleanup() {
    if [ "${KEEP_LAB:-0}" != 1 ]; then "$lab" down || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT

"$lab" up "$hosts_needed" --fresh
"$lab" inventory "$scratch/inventory.yml"

export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS_PATH"
export ANSIBLE_ROLES_PATH="$targets_dir"
export ANSIBLE_HOST_KEY_CHECKING=False
export ANSIBLE_RETRY_FILES_ENABLED=False
export ANSIBLE_NOCOLOR=1
export ANSIBLE_DEPRECATION_WARNINGS=False
export ANSIBLE_INVENTORY_UNPARSED_FAILED=1

passed=0
failed=0
failed_names=()
for t in "${targets[@]}"; do
    play="$scratch/play-$t.yml"
    {
        echo "---"
        echo "- name: Integration target $t"
        echo "  hosts: lab1"
        echo "  gather_facts: false"
        echo "  roles:"
        echo "    - role: $t"
    } > "$play"
    echo "=== target $t"
    start=$(date +%s)
    if (cd "$scratch" && "$VENV/bin/ansible-playbook" -i "$scratch/inventory.yml" "${extra_vars[@]}" "$play"); then
        passed=$((passed + 1))
        echo "=== target $t: PASSED ($(( $(date +%s) - start )) s)"
    else
        failed=$((failed + 1))
        failed_names+=("$t")
        echo "=== target $t: FAILED ($(( $(date +%s) - start )) s)"
    fi
done

[ $failed -eq 0 ] || echo "failed targets: ${failed_names[*]}"
echo "integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
