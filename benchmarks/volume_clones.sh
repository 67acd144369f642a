#!/usr/bin/env bash
# volume_clones.sh - time creating N linked clones (qcow2 overlays) of one base volume.
#
#   (a) floor: a shell loop of `virsh vol-create-as ... --backing-vol base.qcow2`
#   (b) virtops.libvirt.volume with backing_volume, one task with a loop of N
#   (c) community.libvirt.virt_volume (from the `ansible` package on PyPI), one task with a
#       loop of N, state=present with a volume XML that carries <backingStore>
#   (d) (b) again with the N clones present: must be all `ok`
#   (e) (c) again with the N clones present
#
# Brings up its own lab (LAB_NS_PREFIX/LAB_STATE_DIR, default vbench and
# /var/tmp/virtops-bench), its own dir pool (BENCH_POOL_DIR), and removes all of it at the end.
# Usage: benchmarks/volume_clones.sh      (as root; see benchmarks/README.md for the knobs)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VIRTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtops-libvirt}
lab=$root/tests/lab/lab.sh

export LAB_NS_PREFIX=${LAB_NS_PREFIX:-vbench}
export LAB_STATE_DIR=${LAB_STATE_DIR:-/var/tmp/virtops-bench}
n=${BENCH_N:-50}
reps=${BENCH_REPS:-1}
ansible_ver=${BENCH_ANSIBLE_VERSION:-12.3.0}
pool=${BENCH_POOL:-vbench}
pool_dir=${BENCH_POOL_DIR:-/var/tmp/virtops-bench-pool}
results_dir=$root/benchmarks/results
cmdline="BENCH_N=$n BENCH_REPS=$reps $0${*:+ $*}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer: '$n'"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer: '$reps'"
[[ $pool_dir =~ ^/[A-Za-z0-9._/-]+$ ]] || die "BENCH_POOL_DIR must be an absolute path: '$pool_dir'"
((EUID == 0)) || die "must run as root (the lab needs it)"

# ------------------------------------------------------------------ cleanup ---
work=""
uri=""
pool_made=0
lab_state_existed=0
lab_was_up=0
lab_started=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $uri && $pool_made == 1 ]]; then
        virsh -q -c "$uri" pool-destroy "$pool" >/dev/null 2>&1
        virsh -q -c "$uri" pool-undefine "$pool" >/dev/null 2>&1
    fi
    # only the directory this run created, and only our files in it
    if [[ $pool_made == 1 && -d $pool_dir ]]; then
        rm -f "$pool_dir"/base.qcow2 "$pool_dir"/clone*
        rmdir "$pool_dir" || log "warning: $pool_dir is not empty, left in place"
    fi
    if [[ $lab_started == 1 ]]; then
        if [[ $lab_state_existed == 0 ]]; then "$lab" down --purge >&2; else "$lab" down >&2; fi
    fi
    [[ -n $work ]] && rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------- tools ---
# The collection is built and installed by the Makefile into this run's own BUILD_DIR: a `make install`
# of another run (tests) replaces .build/installed while it runs, which broke a playbook mid-benchmark.
work=$(mktemp -d /var/tmp/virtops-bench-work.XXXXXX)
log "make install BUILD_DIR=$work/build"
make -s -C "$root" install BUILD_DIR="$work/build" >"$work/make-install.log" 2>&1 ||
    { tail -20 "$work/make-install.log" >&2; die "make install failed"; }
venv=$(<"$work/build/venv")
installed=$work/build/installed
[[ -f $installed/ansible_collections/virtops/libvirt/plugins/modules/volume.py ]] || die "no collection in $installed"

# the `ansible` package (ships community.libvirt) in its own venv, keyed by its version
bench_venv=$cache/bench-venv-ansible-$ansible_ver
if [[ ! -e $bench_venv/.complete ]]; then
    log "creating $bench_venv (ansible==$ansible_ver, libvirt-python, lxml; about a minute)"
    rm -rf "$bench_venv"
    mkdir -p "$cache"
    python3 -m venv "$bench_venv"
    "$bench_venv/bin/pip" install -q "ansible==$ansible_ver" libvirt-python lxml >"$cache/bench-pip.log" 2>&1 ||
        { tail -20 "$cache/bench-pip.log" >&2; die "pip install failed (log: $cache/bench-pip.log)"; }
    touch "$bench_venv/.complete"
fi
cl_dir=$("$bench_venv/bin/python" -c 'import ansible_collections.community.libvirt as m; print(list(m.__path__)[0])')
[[ -f $cl_dir/plugins/modules/virt_volume.py ]] ||
    die "community.libvirt in ansible $ansible_ver has no virt_volume module; see benchmarks/README.md"
cl_ver=$("$bench_venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$cl_dir/MANIFEST.json")

# --------------------------------------------------------------------- lab ---
[[ -d $LAB_STATE_DIR ]] && lab_state_existed=1
if ((lab_state_existed)) && "$lab" status >/dev/null 2>&1; then lab_was_up=1; fi
if ((lab_was_up)); then
    log "lab $LAB_NS_PREFIX ($LAB_STATE_DIR) is already up: using it and leaving it up"
else
    lab_started=1
    log "lab up: LAB_NS_PREFIX=$LAB_NS_PREFIX LAB_STATE_DIR=$LAB_STATE_DIR"
    "$lab" up 1 >&2
fi
uri=$("$lab" uris | head -n1)
"$lab" inventory "$work/inventory.yml"

# -------------------------------------------------------------------- pool ---
[[ ! -e $pool_dir ]] || die "$pool_dir already exists; remove it or set BENCH_POOL_DIR"
virsh -q -c "$uri" pool-info "$pool" >/dev/null 2>&1 && die "pool '$pool' already exists on $uri"
mkdir -m 0755 "$pool_dir"
pool_made=1
virsh -q -c "$uri" pool-define-as "$pool" dir --target "$pool_dir" >/dev/null
virsh -q -c "$uri" pool-start "$pool" >/dev/null
virsh -q -c "$uri" vol-create-as "$pool" base.qcow2 2G --format qcow2 >/dev/null

# ---------------------------------------------------------------- variants ---
cat >"$work/ansible.cfg" <<'EOF'
[defaults]
retry_files_enabled = False
EOF
cat >"$work/virtops.yml" <<'EOF'
- name: Linked clones with virtops.libvirt.volume
  hosts: lab1
  gather_facts: false
  tasks:
    - name: Clone
      virtops.libvirt.volume:
        uri: "{{ libvirt_uri }}"
        pool: "{{ bench_pool }}"
        name: "clone{{ item }}"
        backing_volume: base.qcow2
        capacity: 2G
        format: qcow2
      loop: "{{ range(1, bench_n | int + 1) | list }}"
EOF
cat >"$work/community.yml" <<'EOF'
- name: Linked clones with community.libvirt.virt_volume
  hosts: lab1
  gather_facts: false
  tasks:
    - name: Clone
      community.libvirt.virt_volume:
        uri: "{{ libvirt_uri }}"
        pool: "{{ bench_pool }}"
        state: present
        xml: |
          <volume type='file'>
            <name>clone{{ item }}</name>
            <capacity unit='G'>2</capacity>
            <target><format type='qcow2'/></target>
            <backingStore>
              <path>{{ bench_pool_dir }}/base.qcow2</path>
              <format type='qcow2'/>
            </backingStore>
          </volume>
      loop: "{{ range(1, bench_n | int + 1) | list }}"
EOF

clone_count() { virsh -q -c "$uri" vol-list "$pool" | awk '$1 ~ /^clone[0-9]+$/' | wc -l; }

reset_clones() {
    rm -f "$pool_dir"/clone*
    virsh -q -c "$uri" pool-refresh "$pool" >/dev/null
    [[ $(clone_count) == 0 ]] || die "clones left after reset"
}

verify_clones() { # $1 = variant label
    local c i bf
    c=$(clone_count)
    [[ $c == "$n" ]] || die "$1: $c clones in pool '$pool', expected $n"
    for i in 1 "$n"; do
        bf=$(qemu-img info -U --output=json "$pool_dir/clone$i" |
            python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("format"), d.get("virtual-size"), d.get("backing-filename"))')
        [[ $bf == "qcow2 2147483648 $pool_dir/base.qcow2" ]] ||
            die "$1: clone$i is not a 2 GiB qcow2 overlay of base.qcow2: $bf"
    done
}

verify_log() { # $1 label, $2 log, $3 expected status of every item (changed|ok)
    local got other
    got=$(grep -c "^$3: \[lab1\] => (item=" "$2" || true)
    other=$(grep -cE '^(changed|ok|failed|fatal|skipping):' "$2" || true)
    [[ $got == "$n" && $other == "$n" ]] ||
        die "$1: expected $n items '$3', got $got of $other (log: $2)"
}

declare -A times=()
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

run_floor() {
    local t0 t1 i
    t0=$(now)
    for ((i = 1; i <= n; i++)); do
        virsh -q -c "$uri" vol-create-as "$pool" "clone$i" 2G --format qcow2 \
            --backing-vol base.qcow2 --backing-vol-format qcow2 >/dev/null
    done
    t1=$(now)
    verify_clones a
    times[a]+="$(elapsed "$t0" "$t1") "
}

run_playbook() { # $1 variant, $2 venv, $3 playbook, $4 expected item status
    local t0 t1 logf=$work/$1-$rep.log
    local -a env=(ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0)
    if [[ $1 == [bd] ]]; then env+=(ANSIBLE_COLLECTIONS_PATH="$installed"); fi
    t0=$(now)
    (cd "$work" && env -u ANSIBLE_COLLECTIONS_PATH "${env[@]}" "$2/bin/ansible-playbook" -i inventory.yml \
        -e "bench_pool=$pool bench_pool_dir=$pool_dir bench_n=$n" "$3") >"$logf" 2>&1 ||
        { tail -30 "$logf" >&2; die "$1: ansible-playbook failed (log: $logf)"; }
    t1=$(now)
    verify_log "$1" "$logf" "$4"
    verify_clones "$1"
    times[$1]+="$(elapsed "$t0" "$t1") "
}

for ((rep = 1; rep <= reps; rep++)); do
    log "repetition $rep/$reps"
    reset_clones
    log "(a) virsh vol-create-as loop"; run_floor
    reset_clones
    log "(b) virtops.libvirt.volume"; run_playbook b "$venv" virtops.yml changed
    log "(d) virtops.libvirt.volume, second run"; run_playbook d "$venv" virtops.yml ok
    reset_clones
    log "(c) community.libvirt.virt_volume"; run_playbook c "$bench_venv" community.yml changed
    log "(e) community.libvirt.virt_volume, second run"; run_playbook e "$bench_venv" community.yml ok
done
reset_clones

# ----------------------------------------------------------------- report ---
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A what=(
    [a]="floor: shell loop of \`virsh vol-create-as --backing-vol\`"
    [b]="virtops.libvirt.volume \`backing_volume\`, loop (create)"
    [c]="community.libvirt.virt_volume $cl_ver \`xml\` with \`<backingStore>\`, loop (create)"
    [d]="(b) again, $n clones present (all ok)"
    [e]="(c) again, $n clones present (all ok)"
)
med_a=$(median <<<"${times[a]}")
virsh_version=$(virsh -c "$uri" version | awk -F': *' '/libvirt/ && /library/ { l = $2 } /Running hypervisor/ { h = $2 } END { print l ", running hypervisor " h }')
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$results_dir"
out=$results_dir/volume_clones-$stamp.md
{
    echo "## volume_clones: $n linked clones of a 2 GiB qcow2 base volume, one dir pool"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores ($(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "- $virsh_version; $(qemu-img --version | head -n1)"
    echo "- ansible-core $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)') for (b)/(d); ansible $ansible_ver (ansible-core $("$bench_venv/bin/python" -c 'import ansible; print(ansible.__version__)'), community.libvirt $cl_ver) for (c)/(e)"
    echo "- lab: LAB_NS_PREFIX=$LAB_NS_PREFIX LAB_STATE_DIR=$LAB_STATE_DIR, pool dir $pool_dir"
    echo "- repetitions: $reps (median shown); command: \`$cmdline\`"
    echo
    echo "| variant | what | seconds | ms per clone | ratio to (a) | all runs (s) |"
    echo "|---|---|---:|---:|---:|---|"
    for v in a b c d e; do
        m=$(median <<<"${times[$v]}")
        awk -v v="$v" -v w="${what[$v]}" -v m="$m" -v a="$med_a" -v n="$n" -v all="${times[$v]% }" \
            'BEGIN { printf "| (%s) | %s | %.2f | %.0f | %.1fx | %s |\n", v, w, m, 1000 * m / n, m / a, all }'
    done
} >"$out"
cat "$out"
log "written to $out"
