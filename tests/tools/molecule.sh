#!/usr/bin/env bash
# Runs the roles' molecule scenarios (extensions/molecule) against a lab of two hypervisors, with the
# collection installed from its built tarball.
#
#   VENV=... COLLECTIONS_PATH=... tests/tools/molecule.sh [SCENARIO...]
#
# Without arguments every scenario runs, one after the other. The scenarios use molecule's delegated
# driver: the lab is the platform, each scenario's destroy step runs the roles' teardown before and
# after it. KEEP_LAB=1 leaves the lab running afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${VENV:?set VENV to the tools venv (make molecule does)}"
: "${COLLECTIONS_PATH:?set COLLECTIONS_PATH to where the collection is installed}"
lab="$root/tests/lab/lab.sh"
# a lab of its own (namespaces <prefix>-molN, state dir <state dir>-mol): make test runs the scenarios
# while the integration targets use the usual lab
export LAB_NS_PREFIX="${LAB_NS_PREFIX:-virtops-lab}-mol" LAB_STATE_DIR="${LAB_STATE_DIR:-/var/tmp/virtops-lab}-mol"
[ -x "$VENV/bin/molecule" ] || { echo "molecule is not installed in $VENV (make deps installs it)" >&2; exit 1; }

scratch=$(mktemp -d /tmp/virtops-molecule.XXXXXX)
cleanup() {
    if [ "${KEEP_LAB:-0}" != 1 ]; then "$lab" down || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT

"$lab" up 2 --fresh
"$lab" inventory "$scratch/inventory.yml"

export VIRTOPS_LAB_INVENTORY="$scratch/inventory.yml"
export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS_PATH"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 PY_COLORS=0
export ANSIBLE_DEPRECATION_WARNINGS=False
export PATH="$VENV/bin:$PATH"

if [ $# -gt 0 ]; then
    scenarios=("$@")
else
    scenarios=()
    for f in "$root"/extensions/molecule/*/molecule.yml; do
        scenarios+=("$(basename "$(dirname "$f")")")
    done
fi
[ ${#scenarios[@]} -gt 0 ] || { echo "no molecule scenarios found" >&2; exit 1; }

cd "$root"
passed=0
failed_names=()
for s in "${scenarios[@]}"; do
    echo "=== scenario $s"
    start=$(date +%s)
    # a private state directory per scenario and run: every scenario starts from nothing molecule remembers
    if MOLECULE_EPHEMERAL_DIRECTORY="$scratch/ephemeral-$s" molecule test -s "$s"; then
        passed=$((passed + 1))
        echo "=== scenario $s: PASSED ($(( $(date +%s) - start )) s)"
    else
        failed_names+=("$s")
        echo "=== scenario $s: FAILED ($(( $(date +%s) - start )) s)"
    fi
done
[ ${#failed_names[@]} -eq 0 ] || echo "failed scenarios: ${failed_names[*]}"
echo "molecule: $passed passed, ${#failed_names[@]} failed"
[ ${#failed_names[@]} -eq 0 ]
