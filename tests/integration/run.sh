#!/usr/bin/env bash
# Runs ansible-test style integration targets (tests/integration/targets/NAME/tasks/main.yml)
# against the real lab, with the collection installed from its built tarball.
#
#   VENV=... COLLECTIONS_PATH=... tests/integration/run.sh [TARGET...]
#
# Each target runs as a role in a playbook written to a scratch directory outside the repository,
# against the lab's hypervisor inventory (hosts lab1..labN, group 'hypervisors').  A target's
# `aliases` file may say `lab_hosts/N` (it needs N hypervisors, and its inventory holds exactly
# those N, even when another target of the run made the lab larger), `needs/guest_image` (it boots the
# lab's Debian guest image: built once per machine by tests/lab/guest-image.sh and passed to the
# target as the variable `guest_image_dir`), `needs/host_root` (a bare Debian root filesystem with
# the hypervisor role's packages in its apt cache: tests/lab/host-root.sh, variable `host_root_dir`)
# or `disabled`.
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

# alias_number NAME TARGET: N of the alias NAME/N in TARGET's aliases file (nothing when absent)
alias_number() { sed -n "s#^$1/\([0-9]\+\)\$#\1#p" "$targets_dir/$2/aliases" 2>/dev/null | head -n1; }

hosts_needed=1
extra_vars=()
image_dir=
host_root_dir=
for t in "${targets[@]}"; do
    if grep -qx 'needs/guest_image' "$targets_dir/$t/aliases" 2>/dev/null && [ -z "$image_dir" ]; then
        image_dir=$("$root/tests/lab/guest-image.sh" build)
        extra_vars+=(-e "guest_image_dir=$image_dir")
    fi
    if grep -qx 'needs/host_root' "$targets_dir/$t/aliases" 2>/dev/null && [ -z "$host_root_dir" ]; then
        host_root_dir=$("$root/tests/lab/host-root.sh" build)
        extra_vars+=(-e "host_root_dir=$host_root_dir")
    fi
    [ -d "$targets_dir/$t" ] || { echo "unknown target: $t" >&2; exit 1; }
    n=$(alias_number lab_hosts "$t")
    if [ -n "$n" ] && [ "$n" -gt "$hosts_needed" ]; then hosts_needed=$n; fi
done

# INTEGRATION_JOBS=N (N > 1): the targets are split over N lanes that run at the same time, each
# against a lab of its own (lane 1 the usual one, lane L the namespaces <prefix>-lLh and the state dir
# <state dir>-lL), longest first by the `time/SECONDS` alias (expected seconds on an idle machine,
# 60 when absent) onto the lane with the least time.  The lanes' outputs follow one another at the end.
jobs=${INTEGRATION_JOBS:-1}
if [ -z "${VIRTOPS_IT_LANE:-}" ] && [ "$jobs" -gt 1 ] && [ ${#targets[@]} -gt 1 ]; then
    [ "$jobs" -le ${#targets[@]} ] || jobs=${#targets[@]}
    lane_targets=()
    lane_time=()
    for ((l = 0; l < jobs; l++)); do lane_targets[l]=""; lane_time[l]=0; done
    while read -r secs t; do
        best=0
        for ((l = 1; l < jobs; l++)); do
            if [ "${lane_time[l]}" -lt "${lane_time[best]}" ]; then best=$l; fi
        done
        lane_targets[best]+=" $t"
        lane_time[best]=$((lane_time[best] + secs))
    done < <(for t in "${targets[@]}"; do
        secs=$(alias_number time "$t")
        echo "${secs:-60} $t"
    done | sort -k1,1nr -k2,2)
    logs=$(mktemp -d /tmp/virtops-integration-lanes.XXXXXX)
    base_prefix=${LAB_NS_PREFIX:-virtops-lab}
    base_state=${LAB_STATE_DIR:-/var/tmp/virtops-lab}
    pids=()
    for ((l = 0; l < jobs; l++)); do
        lane=$((l + 1))
        prefix=$base_prefix
        state=$base_state
        if [ "$lane" -gt 1 ]; then prefix="$base_prefix-l${lane}h"; state="$base_state-l$lane"; fi
        echo "lane $lane (~${lane_time[l]} s, lab $prefix):${lane_targets[l]}"
        # shellcheck disable=SC2086 # the lane's target names, split on spaces
        LAB_NS_PREFIX=$prefix LAB_STATE_DIR=$state VIRTOPS_IT_LANE=$lane "$0" ${lane_targets[l]} \
            >"$logs/lane$lane.log" 2>&1 &
        pids+=($!)
    done
    trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
    rc=0
    for ((l = 0; l < jobs; l++)); do
        wait "${pids[l]}" || rc=1
    done
    for ((l = 0; l < jobs; l++)); do
        echo "################ lane $((l + 1)):${lane_targets[l]}"
        cat "$logs/lane$((l + 1)).log"
    done
    echo "################ all lanes"
    cat "$logs"/lane*.log | grep -E '^=== target .*: (PASSED|FAILED)' || true
    # the failures once more, each under its target and task, so that the end of a long log says why
    # (of failed targets only: a passing target's ignored errors are not news)
    awk '/^=== target [^:]*$/ { target = $3; buf = "" }
         /^TASK \[/ { task = $0 }
         /^(fatal|failed): / || /FAILED! =>/ { buf = buf "--- " target ": " task "\n" substr($0, 1, 3000) "\n" }
         /^=== target .*: FAILED/ { printf "%s", buf }' "$logs"/lane*.log
    passed=$(cat "$logs"/lane*.log | grep -cE '^=== target .*: PASSED' || true)
    failed=$(cat "$logs"/lane*.log | grep -cE '^=== target .*: FAILED' || true)
    rm -rf "$logs"
    echo "integration: $passed passed, $failed failed (in $jobs lanes)"
    if [ "$passed" -ne ${#targets[@]} ]; then rc=1; fi
    exit "$rc"
fi

scratch=$(mktemp -d /tmp/virtops-integration.XXXXXX)
cleanup() {
    if [ "${KEEP_LAB:-0}" != 1 ]; then "$lab" down || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT

"$lab" up "$hosts_needed" --fresh

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
    # a target sees the hosts it declares (lab_hosts/N), all of the lab when it declares none
    n=$(alias_number lab_hosts "$t")
    inventory="$scratch/inventory-${n:-$hosts_needed}.yml"
    [ -e "$inventory" ] || "$lab" inventory "$inventory" "${n:-$hosts_needed}"
    echo "=== target $t"
    start=$(date +%s)
    if (cd "$scratch" && "$VENV/bin/ansible-playbook" -i "$inventory" "${extra_vars[@]}" "$play"); then
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
