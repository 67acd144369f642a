#!/usr/bin/env bash
# vm_overhead.sh - per-task overhead of virtops.libvirt.vm, and 20 VMs from linked clones.
#
# Part A, per-task overhead, each in ONE ansible-playbook run:
#   BENCH_TASK_N items of ansible.builtin.ping, then BENCH_TASK_N items of
#   virtops.libvirt.vm {name, state: running} on a VM that already runs (every item `ok`);
#   the same with community.libvirt.virt {name, state: running} in the `ansible` package's venv.
# Part B, BENCH_N (20) VMs, each with one virtio disk that is a linked clone (qcow2 overlay) of
# one base volume, defined and started; checked, then removed before the next variant:
#   (a) floor: a shell loop of qemu-img create -b + virsh define (XML written here) + virsh start
#   (b) virtops.libvirt.vm with disks: [{backing_volume: base.qcow2, size: 1G}], state: running
#   (c) community.libvirt: virt_volume (volume XML with <backingStore>), then virt command=define
#       with the same domain XML as (a) from a template, then virt state=running
#   (d) (b) again with the VMs present: every item must be `ok`
#
# Brings up its own lab (LAB_NS_PREFIX/LAB_STATE_DIR, default virtops-bench and
# /var/tmp/virtops-bench), its own dir pool (BENCH_POOL_DIR), and removes all of it at the end.
# Usage: benchmarks/vm_overhead.sh      (as root; see benchmarks/README.md for the knobs)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VIRTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtops-libvirt}
lab=$root/tests/lab/lab.sh

export LAB_NS_PREFIX=${LAB_NS_PREFIX:-virtops-bench}
export LAB_STATE_DIR=${LAB_STATE_DIR:-/var/tmp/virtops-bench}
LAB_STATE_DIR=${LAB_STATE_DIR%/}
n=${BENCH_N:-20}
task_n=${BENCH_TASK_N:-20}
reps=${BENCH_REPS:-1}
ansible_ver=${BENCH_ANSIBLE_VERSION:-12.3.0}
virt_type=${BENCH_VIRT_TYPE:-kvm}
pool=${BENCH_POOL:-vbench-vm}
pool_dir=${BENCH_POOL_DIR:-/var/tmp/virtops-bench-vm-pool}
vm_prefix=vbench-vm     # Part B domains vbench-vm1..N, volumes vbench-vmN.qcow2
idle_vm=vbench-idle     # Part A domain, disk vbench-idle.qcow2
results_dir=$root/benchmarks/results
cmdline="BENCH_N=$n BENCH_TASK_N=$task_n BENCH_REPS=$reps $0${*:+ $*}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer: '$n'"
[[ $task_n =~ ^[1-9][0-9]*$ ]] || die "BENCH_TASK_N must be a positive integer: '$task_n'"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer: '$reps'"
[[ $virt_type == kvm || $virt_type == qemu ]] || die "BENCH_VIRT_TYPE must be kvm or qemu: '$virt_type'"
[[ $pool_dir =~ ^/[A-Za-z0-9._/-]+$ ]] || die "BENCH_POOL_DIR must be an absolute path: '$pool_dir'"
[[ $pool =~ ^[A-Za-z0-9._-]+$ ]] || die "BENCH_POOL must be a plain name: '$pool'"
# never the default lab (tests, demo) that other people use
[[ $LAB_NS_PREFIX != virtops-lab && $LAB_STATE_DIR != /var/tmp/virtops-lab ]] ||
    die "refusing to run against the default lab (LAB_NS_PREFIX=virtops-lab or LAB_STATE_DIR=/var/tmp/virtops-lab)"
((EUID == 0)) || die "must run as root (the lab needs it)"

# ------------------------------------------------------------------ cleanup ---
work=""
uri=""
pool_made=0
lab_state_existed=0
lab_was_up=0
lab_started=0

virsh_q() { virsh -q -c "$uri" "$@"; }

# names of this benchmark's domains (Part B, and with $1 = all also the Part A domain)
bench_domains() {
    virsh_q list --all --name | awk -v p="$vm_prefix" -v idle="$idle_vm" -v all="${1:-}" \
        '$1 ~ ("^" p "[0-9]+$") || (all == "all" && $1 == idle)'
}

remove_domains() { # $1 = all: also the Part A domain
    local -a doms
    mapfile -t doms < <(bench_domains "${1:-}")
    ((${#doms[@]})) || return 0
    local d
    # destroy takes 1-2 s per domain (QEMU exits): in parallel; undefine is quick
    for d in "${doms[@]}"; do virsh_q destroy "$d" >/dev/null 2>&1 & done
    wait
    for d in "${doms[@]}"; do virsh_q undefine "$d" >/dev/null; done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $uri ]]; then
        remove_domains all
        if [[ $pool_made == 1 ]]; then
            virsh_q pool-destroy "$pool" >/dev/null 2>&1
            virsh_q pool-undefine "$pool" >/dev/null 2>&1
        fi
    fi
    # only the directory this run created, and only our files in it
    if [[ $pool_made == 1 && -d $pool_dir ]]; then
        rm -f "$pool_dir"/base.qcow2 "$pool_dir/$vm_prefix"*.qcow2 "$pool_dir/$idle_vm.qcow2"
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

t_script0=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------- tools ---
# The collection is built and installed by the Makefile into this run's own BUILD_DIR and STAGE:
# a `make install` of another run (tests) replaces .build/installed and the shared stage while it runs.
work=$(mktemp -d /var/tmp/virtops-bench-work.XXXXXX)
log "make install BUILD_DIR=$work/build STAGE=$work/stage"
make -s -C "$root" install BUILD_DIR="$work/build" STAGE="$work/stage" >"$work/make-install.log" 2>&1 ||
    { tail -20 "$work/make-install.log" >&2; die "make install failed"; }
venv=$(<"$work/build/venv")
installed=$work/build/installed
[[ -f $installed/ansible_collections/virtops/libvirt/plugins/modules/vm.py ]] || die "no collection in $installed"
git_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$root" status --porcelain -- plugins 2>/dev/null) ]]; then git_rev+=" (plugins/ has uncommitted changes)"; fi

# the `ansible` package (ships community.libvirt) in its own venv, keyed by its version; shared
# with volume_clones.sh
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
for m in virt virt_volume; do
    [[ -f $cl_dir/plugins/modules/$m.py ]] || die "community.libvirt in ansible $ansible_ver has no $m module"
done
cl_ver=$("$bench_venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$cl_dir/MANIFEST.json")

# --------------------------------------------------------------------- lab ---
# The state dir must not belong to a lab of another LAB_NS_PREFIX (volume_clones.sh uses the same
# state dir with prefix vbench): its libvirtd would still be running under this state dir.
lab_busy_elsewhere() {
    local f pid
    for f in "$LAB_STATE_DIR"/host*/pids/libvirtd.pid; do
        [[ -r $f ]] || continue
        pid=$(<"$f")
        [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm && $(<"/proc/$pid/comm") == libvirtd ]] && return 0
    done
    return 1
}
[[ -d $LAB_STATE_DIR ]] && lab_state_existed=1
if ((lab_state_existed)) && "$lab" status >/dev/null 2>&1; then lab_was_up=1; fi
if ((lab_was_up)); then
    log "lab $LAB_NS_PREFIX ($LAB_STATE_DIR) is already up: using it and leaving it up"
else
    if ((lab_state_existed)) && lab_busy_elsewhere; then
        die "a libvirtd of $LAB_STATE_DIR runs, but not as lab '$LAB_NS_PREFIX' (another benchmark?); set LAB_STATE_DIR and LAB_NS_PREFIX"
    fi
    lab_started=1
    log "lab up: LAB_NS_PREFIX=$LAB_NS_PREFIX LAB_STATE_DIR=$LAB_STATE_DIR"
    "$lab" up 1 >&2
fi
uri=$("$lab" uris | head -n1)
"$lab" inventory "$work/inventory.yml"

# ------------------------------------------------------------ pool and base ---
[[ -z $(bench_domains all) ]] || die "domains $vm_prefix* or $idle_vm already exist on $uri"
[[ ! -e $pool_dir ]] || die "$pool_dir already exists; remove it or set BENCH_POOL_DIR"
virsh_q pool-info "$pool" >/dev/null 2>&1 && die "pool '$pool' already exists on $uri"
mkdir -m 0755 "$pool_dir"
pool_made=1
virsh_q pool-define-as "$pool" dir --target "$pool_dir" >/dev/null
virsh_q pool-start "$pool" >/dev/null
virsh_q vol-create-as "$pool" base.qcow2 1G --format qcow2 >/dev/null
base=$pool_dir/base.qcow2

# The one domain XML of (a) and (c); (b) makes the same definition from the vm module's options
# (checked after every variant). 64 MiB, 1 vCPU, q35, SeaBIOS with nothing to boot, one virtio disk,
# a pty serial console (the vm module always adds one), no NIC, no graphics.
domain_xml() { # NAME DISK_PATH VIRT_TYPE
    cat <<EOF
<domain type='$3'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  <currentMemory unit='MiB'>64</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'/>
    <console type='pty'/>
    <memballoon model='virtio'/>
  </devices>
</domain>
EOF
}

# the running VM of Part A, made like (a)
qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$pool_dir/$idle_vm.qcow2" 1G
domain_xml "$idle_vm" "$pool_dir/$idle_vm.qcow2" "$virt_type" >"$work/$idle_vm.xml"
virsh_q define "$work/$idle_vm.xml" >/dev/null
virsh_q start "$idle_vm" >/dev/null

# ---------------------------------------------------------------- playbooks ---
cat >"$work/ansible.cfg" <<'EOF'
[defaults]
retry_files_enabled = False
EOF
mkdir "$work/templates" "$work/floor"
# shellcheck disable=SC2016 # Jinja placeholders, not shell
domain_xml '{{ vm_name }}' '{{ vm_disk }}' '{{ bench_virt_type }}' >"$work/templates/domain.xml.j2"

# Timing inside a playbook: set_fact markers (no module process, a few ms each). The interval
# t0..t1 holds the timed task plus the tail/head of two marker tasks; t1..t2 is two markers
# back to back, subtracted as the marker overhead.
mark() { # $1 = fact name
    printf '    - name: Marker %s\n      ansible.builtin.set_fact:\n        %s: "{{ now().timestamp() }}"\n' "$1" "$1"
}

part_a_playbook() { # $1 module line, $2 task name
    cat <<EOF
- name: Per-task overhead
  hosts: lab1
  gather_facts: false
  tasks:
    - name: Warm-up ping
      ansible.builtin.ping:
    - name: Warm-up $2
      $1
$(mark t0)
    - name: Timed ping
      ansible.builtin.ping:
      loop: "{{ range(1, bench_n | int + 1) | list }}"
$(mark t1)
    - name: Timed $2
      $1
      loop: "{{ range(1, bench_n | int + 1) | list }}"
$(mark t2)
$(mark t3)
    - name: Report
      ansible.builtin.debug:
        msg: "BENCH_MARKS {{ t0 }} {{ t1 }} {{ t2 }} {{ t3 }}"
EOF
}
# shellcheck disable=SC2016
part_a_playbook 'virtops.libvirt.vm: {uri: "{{ libvirt_uri }}", name: "{{ bench_idle }}", state: running}' vm \
    >"$work/a-virtops.yml"
# shellcheck disable=SC2016
part_a_playbook 'community.libvirt.virt: {uri: "{{ libvirt_uri }}", name: "{{ bench_idle }}", state: running}' virt \
    >"$work/a-community.yml"

cat >"$work/b-virtops.yml" <<EOF
- name: VMs from linked clones with virtops.libvirt.vm
  hosts: lab1
  gather_facts: false
  tasks:
$(mark t0)
    - name: VM
      virtops.libvirt.vm:
        uri: "{{ libvirt_uri }}"
        name: "{{ bench_prefix }}{{ item }}"
        memory: 64
        vcpus: 1
        virt_type: "{{ bench_virt_type }}"
        graphics:
          type: none
        guest_agent: false
        rng: false
        disks:
          - pool: "{{ bench_pool }}"
            volume: "{{ bench_prefix }}{{ item }}.qcow2"
            backing_volume: base.qcow2
            size: 1G
        state: running
      loop: "{{ range(1, bench_n | int + 1) | list }}"
$(mark t1)
$(mark t2)
    - name: Report
      ansible.builtin.debug:
        msg: "BENCH_MARKS {{ t0 }} {{ t1 }} {{ t2 }}"
EOF

cat >"$work/b-community.yml" <<EOF
- name: VMs from linked clones with community.libvirt
  hosts: lab1
  gather_facts: false
  tasks:
$(mark t0)
    - name: Clone volume
      community.libvirt.virt_volume:
        uri: "{{ libvirt_uri }}"
        pool: "{{ bench_pool }}"
        state: present
        xml: |
          <volume type='file'>
            <name>{{ bench_prefix }}{{ item }}.qcow2</name>
            <capacity unit='G'>1</capacity>
            <target><format type='qcow2'/></target>
            <backingStore>
              <path>{{ bench_pool_dir }}/base.qcow2</path>
              <format type='qcow2'/>
            </backingStore>
          </volume>
      loop: "{{ range(1, bench_n | int + 1) | list }}"
    - name: Define
      community.libvirt.virt:
        uri: "{{ libvirt_uri }}"
        command: define
        xml: "{{ lookup('ansible.builtin.template', 'domain.xml.j2') }}"
      vars:
        vm_name: "{{ bench_prefix }}{{ item }}"
        vm_disk: "{{ bench_pool_dir }}/{{ bench_prefix }}{{ item }}.qcow2"
      loop: "{{ range(1, bench_n | int + 1) | list }}"
    - name: Start
      community.libvirt.virt:
        uri: "{{ libvirt_uri }}"
        name: "{{ bench_prefix }}{{ item }}"
        state: running
      loop: "{{ range(1, bench_n | int + 1) | list }}"
$(mark t1)
$(mark t2)
    - name: Report
      ansible.builtin.debug:
        msg: "BENCH_MARKS {{ t0 }} {{ t1 }} {{ t2 }}"
EOF

# --------------------------------------------------------------- checks ---
declare -A times=() inner=()
declare -A prof=()
extra_env=() # more environment for run_ansible
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

running_count() { virsh_q list --name --state-running | awk -v p="$vm_prefix" '$1 ~ ("^" p "[0-9]+$")' | wc -l; }
defined_count() { bench_domains | wc -l; }
clone_count() { virsh_q vol-list "$pool" | awk -v p="$vm_prefix" '$1 ~ ("^" p "[0-9]+\\.qcow2$")' | wc -l; }

# the inactive definition with the VM's own name, UUID and disk name taken out
normalized_xml() { virsh_q dumpxml --inactive "$1" | sed -e "s/$1/VM/g" -e '/<uuid>/d'; }

reset_vms() {
    remove_domains
    rm -f "$pool_dir/$vm_prefix"*.qcow2
    virsh_q pool-refresh "$pool" >/dev/null
    [[ $(defined_count) == 0 && $(clone_count) == 0 ]] || die "VMs or clones left after reset"
}

ref_xml=""
verify_vms() { # $1 = variant label
    local c i bad
    c=$(running_count)
    [[ $c == "$n" ]] || die "$1: $c domains $vm_prefix* running, expected $n"
    c=$(defined_count)
    [[ $c == "$n" ]] || die "$1: $c domains $vm_prefix* defined, expected $n"
    # each VM has one disk, vda, its own clone, a 1 GiB qcow2 whose backing file is the base
    for ((i = 1; i <= n; i++)); do
        printf '%s %s\n' "$i" "$(virsh_q domblklist "$vm_prefix$i" | awk '{ printf "%s=%s;", $1, $2 }')"
    done >"$work/blk.txt"
    bad=$(python3 - "$work/blk.txt" "$pool_dir" "$vm_prefix" "$base" <<'EOF'
import json, subprocess, sys
blk, pool_dir, prefix, base = sys.argv[1:5]
bad = []
for line in open(blk):
    i, disks = line.split(" ", 1)
    path = "%s/%s%s.qcow2" % (pool_dir, prefix, i)
    if disks.strip() != "vda=%s;" % path:
        bad.append("%s%s: disks %s" % (prefix, i, disks.strip()))
        continue
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path],
                                     check=True, capture_output=True, text=True).stdout)
    got = (info.get("format"), info.get("virtual-size"), info.get("backing-filename"),
           info.get("backing-filename-format"))
    if got != ("qcow2", 1 << 30, base, "qcow2"):
        bad.append("%s: %s" % (path, got))
print("; ".join(bad))
EOF
    )
    [[ -z $bad ]] || die "$1: $bad"
    # the same definition as the floor's (name, UUID and disk name aside)
    for i in 1 "$n"; do
        if [[ -z $ref_xml ]]; then
            ref_xml=$(normalized_xml "${vm_prefix}1")
        elif [[ $(normalized_xml "$vm_prefix$i") != "$ref_xml" ]]; then
            diff <(printf '%s\n' "$ref_xml") <(normalized_xml "$vm_prefix$i") >&2 || true
            die "$1: the definition of $vm_prefix$i differs from the floor's (diff above)"
        fi
    done
}

# verify_items LOG TASK STATUS COUNT: the task has COUNT loop items, all with STATUS
verify_items() {
    local got
    got=$(awk -v t="TASK [$2]" -v want="$3:" '
        index($0, "TASK [") == 1 { on = (index($0, t) == 1); next }
        on && /^(ok|changed|failed|fatal|skipping): \[lab1\] => \(item=/ { s[$1]++; total++ }
        END { printf "%d %d", s[want], total }' "$1")
    [[ $got == "$4 $4" ]] || die "task '$2': expected $4 items '$3', got (status, all) = ($got) (log: $1)"
}

# marks_of LOG: the BENCH_MARKS line's numbers
marks_of() { sed -n 's/.*"BENCH_MARKS \([0-9. ]*\)".*/\1/p' "$1" | tail -n1; }

run_ansible() { # $1 label, $2 venv, $3 playbook, $4 bench_n; sets $logf and $wall (seconds)
    local t0 t1
    local -a env=(ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 "${extra_env[@]}")
    if [[ $2 == "$venv" ]]; then env+=(ANSIBLE_COLLECTIONS_PATH="$installed"); fi
    logf=$work/$1-$rep.log
    t0=$(now)
    (cd "$work" && env -u ANSIBLE_COLLECTIONS_PATH "${env[@]}" "$2/bin/ansible-playbook" -i inventory.yml \
        -e "bench_pool=$pool bench_pool_dir=$pool_dir bench_n=$4 bench_prefix=$vm_prefix" \
        -e "bench_idle=$idle_vm bench_virt_type=$virt_type" "$3") >"$logf" 2>&1 ||
        { tail -30 "$logf" >&2; die "$1: ansible-playbook failed (log: $logf)"; }
    t1=$(now)
    wall=$(elapsed "$t0" "$t1")
}

# ------------------------------------------------------------------ Part A ---
run_part_a() { # $1 label (A or C), $2 venv, $3 playbook, $4 module task name
    local m
    run_ansible "part$1" "$2" "$3" "$task_n"
    verify_items "$logf" "Timed ping" ok "$task_n"
    verify_items "$logf" "Timed $4" ok "$task_n"
    [[ $(virsh_q domstate "$idle_vm") == running ]] || die "part $1: $idle_vm is not running"
    read -r -a m <<<"$(marks_of "$logf")"
    ((${#m[@]} == 4)) || die "part $1: no markers in $logf"
    # per item ms: (interval - marker overhead) / items
    times[$1ping]+="$(awk -v a="${m[0]}" -v b="${m[1]}" -v o="$(elapsed "${m[2]}" "${m[3]}")" -v k="$task_n" \
        'BEGIN { printf "%.1f", 1000 * (b - a - o) / k }') "
    times[$1mod]+="$(awk -v a="${m[1]}" -v b="${m[2]}" -v o="$(elapsed "${m[2]}" "${m[3]}")" -v k="$task_n" \
        'BEGIN { printf "%.1f", 1000 * (b - a - o) / k }') "
}

# ------------------------------------------------------------------ Part B ---
run_floor() {
    local t0 t1 i name disk
    t0=$(now)
    for ((i = 1; i <= n; i++)); do
        name=$vm_prefix$i
        disk=$pool_dir/$name.qcow2
        qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$disk" 1G
        domain_xml "$name" "$disk" "$virt_type" >"$work/floor/$name.xml"
        virsh_q define "$work/floor/$name.xml" >/dev/null
        virsh_q start "$name" >/dev/null
    done
    t1=$(now)
    verify_vms a
    times[a]+="$(elapsed "$t0" "$t1") "
    inner[a]+="$(elapsed "$t0" "$t1") "
}

uuids() { local i; for i in 1 "$n"; do virsh_q domuuid "$vm_prefix$i"; done | tr '\n' ' '; }

run_playbook() { # $1 variant, $2 venv, $3 playbook, $4 expected item status, $5.. task names
    local v=$1 venv_=$2 pb=$3 status=$4 t m
    shift 4
    run_ansible "$v" "$venv_" "$pb" "$n"
    for t in "$@"; do verify_items "$logf" "$t" "$status" "$n"; done
    verify_vms "$v"
    read -r -a m <<<"$(marks_of "$logf")"
    ((${#m[@]} == 3)) || die "$v: no markers in $logf"
    times[$v]+="$wall "
    inner[$v]+="$(awk -v a="${m[0]}" -v b="${m[1]}" -v c="${m[2]}" 'BEGIN { printf "%.3f", (b - a) - (c - b) }') "
}

for ((rep = 1; rep <= reps; rep++)); do
    log "repetition $rep/$reps (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    log "A: ping vs virtops.libvirt.vm state=running, $task_n items each"
    run_part_a A "$venv" a-virtops.yml vm
    log "A: ping vs community.libvirt.virt state=running, $task_n items each"
    run_part_a C "$bench_venv" a-community.yml virt
    reset_vms
    log "(a) shell loop: qemu-img create + virsh define + virsh start, $n VMs"
    run_floor
    reset_vms
    log "(b) virtops.libvirt.vm, $n VMs"
    run_playbook b "$venv" b-virtops.yml changed VM
    u_b=$(uuids)
    log "(d) virtops.libvirt.vm again, $n VMs present"
    run_playbook d "$venv" b-virtops.yml ok VM
    [[ $(uuids) == "$u_b" ]] || die "(d): the VMs were replaced (UUIDs changed)"
    reset_vms
    log "(c) community.libvirt virt_volume + virt define + virt state=running, $n VMs"
    run_playbook c "$bench_venv" b-community.yml changed "Clone volume" Define Start
    reset_vms
done

# ----------------------------------------------------------------- profile ---
# Where the time of one item goes: the module processes Ansible ran for ping and for vm
# (state=running on the running VM) are kept (ANSIBLE_KEEP_REMOTE_FILES) and run again directly,
# BENCH_PROFILE_RUNS times each; Python's -X importtime splits off the imports; cProfile of the
# vm module's main() (imported from the installed collection) shows the work after the imports.
cat >"$work/profile.yml" <<'YML'
- name: Keep one module process of each
  hosts: lab1
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
    - name: VM
      virtops.libvirt.vm: {uri: "{{ libvirt_uri }}", name: "{{ bench_idle }}", state: running}
YML
cat >"$work/bench_profile.py" <<'PY'
"""bench_profile.py runs N FILE... | imports N FILE... | slowest FILE | main URI NAME: key=value lines (ms)."""
import base64, json, re, statistics, subprocess, sys, time


def runs(n, argvs):
    """Median wall time (ms) of each argv, run n times, interleaved (the machine's load drifts)."""
    out = [[] for _ in argvs]
    for _ in range(n):
        for i, argv in enumerate(argvs):
            t = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            out[i].append(1000 * (time.perf_counter() - t))
    return [statistics.median(o) for o in out]


def payload(path, dest):
    """The module_utils zip an AnsiballZ file carries, written to dest; and the module's name."""
    text = open(path).read()
    with open(dest, "wb") as f:
        f.write(base64.b64decode(re.search(r"^zip_data='([^']*)'", text, re.M).group(1)))
    return re.search(r"^module_fqn='([^']*)'", text, re.M).group(1)


PROBE = """import importlib, sys, time
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
import ansible.module_utils.basic
t1 = time.perf_counter()
importlib.import_module(sys.argv[2])
print("%f %f" % (t1 - t0, time.perf_counter() - t1))
"""


def imports(n, paths):
    """Median ms of importing ansible.module_utils.basic, then the module (with its module_utils), from the
    zip each AnsiballZ file carries, as the module process does; n fresh interpreters each, interleaved."""
    zips = []
    for i, path in enumerate(paths):
        dest = "%s.payload%d.zip" % (path, i)
        zips.append((dest, payload(path, dest)))
    out = [([], []) for _ in zips]
    for _ in range(n):
        for i, (zpath, fqn) in enumerate(zips):
            res = subprocess.run([sys.executable, "-c", PROBE, zpath, fqn], check=True, capture_output=True, text=True)
            basic_s, mod_s = res.stdout.split()
            out[i][0].append(1000 * float(basic_s))
            out[i][1].append(1000 * float(mod_s))
    return [(statistics.median(b), statistics.median(m)) for b, m in out]


def slowest(path):
    """The modules with the largest own import time (-X importtime, one run; it inflates the times)."""
    err = subprocess.run([sys.executable, "-X", "importtime", path], check=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True).stderr
    mods = []
    for line in err.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cum, name = line[len("import time:"):].split("|")
            mods.append((int(self_us), name.strip().replace("ansible_collections.virtops.libvirt.plugins.", "")))
    return ", ".join("%s %.0f" % (m, us / 1000) for us, m in sorted(mods, reverse=True)[:8])


def main_profile(uri, name):
    import cProfile, pstats
    from ansible.module_utils import basic
    basic._ANSIBLE_ARGS = json.dumps(dict(ANSIBLE_MODULE_ARGS=dict(uri=uri, name=name, state="running"))).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    t = time.perf_counter()
    from ansible_collections.virtops.libvirt.plugins.modules import vm
    t_import = time.perf_counter() - t
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    try:
        vm.main()
    except SystemExit:
        pass
    prof.disable()
    t_main = time.perf_counter() - t
    calls = dict()
    for (_f, _l, fn), (_cc, nc, tt, _ct, _callers) in pstats.Stats(prof).stats.items():
        if fn.startswith("<built-in method libvirtmod."):
            key = fn[len("<built-in method libvirtmod."):-1]
            have = calls.get(key, (0, 0.0))
            calls[key] = (have[0] + nc, have[1] + tt)
    libvirt_ms = 1000 * sum(tt for _n, tt in calls.values())
    top = ", ".join("%s x%d %.1f" % (k, nc, 1000 * tt)
                    for k, (nc, tt) in sorted(calls.items(), key=lambda i: -i[1][1])[:6])
    return 1000 * t_import, 1000 * t_main, libvirt_ms, top


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "runs":
        argvs = [[sys.executable, "-c", "pass"]] + [[sys.executable, path] for path in sys.argv[3:]]
        for i, ms in enumerate(runs(int(sys.argv[2]), argvs)):
            print("run%d=%.0f" % (i, ms))
    elif cmd == "imports":
        for i, (basic_ms, mod_ms) in enumerate(imports(int(sys.argv[2]), sys.argv[3:])):
            print("basic%d=%.0f" % (i, basic_ms))
            print("mod%d=%.0f" % (i, mod_ms))
    elif cmd == "slowest":
        print("top=%s" % slowest(sys.argv[2]))
    elif cmd == "main":
        t_import, t_main, libvirt_ms, top = main_profile(sys.argv[2], sys.argv[3])
        print("import=%.0f" % t_import)
        print("main=%.0f" % t_main)
        print("libvirt=%.0f" % libvirt_ms)
        print("calls=%s" % top)
PY

prof_runs=${BENCH_PROFILE_RUNS:-10}
run_profile() {
    local keep=$work/keep k v ping_z vm_z
    mkdir -p "$keep"
    extra_env=(ANSIBLE_KEEP_REMOTE_FILES=1 ANSIBLE_REMOTE_TMP="$keep")
    rep=profile
    run_ansible P "$venv" profile.yml 1
    extra_env=()
    ping_z=$(find "$keep" -name AnsiballZ_ping.py | head -n1)
    vm_z=$(find "$keep" -name AnsiballZ_vm.py | head -n1)
    [[ -n $ping_z && -n $vm_z ]] || die "profile: no kept AnsiballZ files in $keep"
    while IFS='=' read -r k v; do prof[$k]=$v; done < <(
        "$venv/bin/python" "$work/bench_profile.py" runs "$prof_runs" "$ping_z" "$vm_z"
        "$venv/bin/python" "$work/bench_profile.py" imports "$prof_runs" "$ping_z" "$vm_z"
        "$venv/bin/python" "$work/bench_profile.py" slowest "$vm_z" | sed 's/^/vm_/'
        PYTHONPATH=$installed "$venv/bin/python" "$work/bench_profile.py" main "$uri" "$idle_vm" | sed 's/^/main_/'
    )
    [[ -n ${prof[run2]:-} && -n ${prof[mod1]:-} && -n ${prof[vm_top]:-} && -n ${prof[main_main]:-} ]] ||
        die "profile: missing results"
    prof[size_ping]=$(stat -c %s "$ping_z")
    prof[size_vm]=$(stat -c %s "$vm_z")
}
log "profile: the module processes of ping and of vm (state=running), each run directly $prof_runs times"
run_profile

# ----------------------------------------------------------------- report ---
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A what=(
    [a]="floor: shell loop of \`qemu-img create -b\` + \`virsh define\` + \`virsh start\`"
    [b]="virtops.libvirt.vm \`disks: [{backing_volume}]\`, \`state: running\`, loop (create)"
    [c]="community.libvirt $cl_ver: \`virt_volume\` (\`<backingStore>\`), \`virt command=define\` (template), \`virt state=running\`: 3 loops"
    [d]="(b) again, $n VMs present (all ok)"
)
med_a=$(median <<<"${times[a]}")
virsh_version=$(virsh -c "$uri" version | awk -F': *' '/libvirt/ && /library/ { l = $2 } /Running hypervisor/ { h = $2 } END { print l ", running hypervisor " h }')
t_script1=$(date +%s)
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$results_dir"
out=$results_dir/vm_overhead-$stamp.md
{
    echo "## vm_overhead: per-task overhead, and $n VMs from linked clones"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); script runtime $((t_script1 - t_script0)) s"
    echo "- machine: $(nproc) cores ($(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "- load average at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $virsh_version; $(qemu-img --version | head -n1)"
    echo "- virtops.libvirt at $git_rev; ansible-core $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)') for virtops; ansible $ansible_ver (ansible-core $("$bench_venv/bin/python" -c 'import ansible; print(ansible.__version__)'), community.libvirt $cl_ver) for community.libvirt"
    echo "- lab: LAB_NS_PREFIX=$LAB_NS_PREFIX LAB_STATE_DIR=$LAB_STATE_DIR, pool dir $pool_dir; guests: $virt_type, 64 MiB, 1 vCPU, q35, SeaBIOS, no OS"
    echo "- repetitions: $reps (median shown); command: \`$cmdline\`"
    echo
    echo "### Part A: per-task overhead, $task_n loop items per task, ping and the module in one playbook run"
    echo
    echo "| run | task | ms per item | ratio to ping | all runs (ms) |"
    echo "|---|---|---:|---:|---|"
    for p in A C; do
        mp=$(median <<<"${times[${p}ping]}")
        mm=$(median <<<"${times[${p}mod]}")
        if [[ $p == A ]]; then
            r="virtops venv"; t="virtops.libvirt.vm \`state: running\` (running VM, all ok)"
        else
            r="ansible $ansible_ver venv"; t="community.libvirt.virt \`state: running\` (running VM, all ok)"
        fi
        awk -v r="$r" -v m="$mp" -v all="${times[${p}ping]% }" \
            'BEGIN { printf "| %s | ansible.builtin.ping | %.0f | 1.0x | %s |\n", r, m, all }'
        awk -v r="$r" -v t="$t" -v m="$mm" -v p="$mp" -v all="${times[${p}mod]% }" \
            'BEGIN { printf "| %s | %s | %.0f | %.2fx | %s |\n", r, t, m, m / p, all }'
    done
    echo
    echo "### Part B: $n VMs, each a linked clone of one base volume, defined and started"
    echo
    echo "| variant | what | seconds | ms per VM | ratio to (a) | ms per VM in the playbook | all runs (s) |"
    echo "|---|---|---:|---:|---:|---:|---|"
    for v in a b c d; do
        med=$(median <<<"${times[$v]}")
        mi=$(median <<<"${inner[$v]}")
        awk -v v="$v" -v w="${what[$v]}" -v m="$med" -v mi="$mi" -v a="$med_a" -v n="$n" -v all="${times[$v]% }" \
            'BEGIN { printf "| (%s) | %s | %.2f | %.0f | %.1fx | %.0f | %s |\n", v, w, m, 1000 * m / n, m / a, 1000 * mi / n, all }'
    done
    echo
    echo "### Where one item's time goes (ping vs vm \`state: running\` on a running VM; ms)"
    echo
    ping_item=$(median <<<"${times[Aping]}")
    vm_item=$(median <<<"${times[Amod]}")
    echo "| | ping | vm | vm - ping |"
    echo "|---|---:|---:|---:|"
    awk -v p="$ping_item" -v v="$vm_item" -v pr="${prof[run1]}" -v vr="${prof[run2]}" -v s="${prof[run0]}" \
        -v pb="${prof[basic0]}" -v vb="${prof[basic1]}" -v pm="${prof[mod0]}" -v vm="${prof[mod1]}" \
        -v mm="${prof[main_main]}" -v ml="${prof[main_libvirt]}" \
        -v ps="${prof[size_ping]}" -v vs="${prof[size_vm]}" -v k="$prof_runs" 'BEGIN {
        printf "| one loop item in Part A (median) | %.0f | %.0f | %.0f |\n", p, v, v - p
        printf "| the module process: its AnsiballZ file run directly (median of %d) | %.0f | %.0f | %.0f |\n", k, pr, vr, vr - pr
        printf "| - Python start-up (`python -c pass`) | %.0f | %.0f | 0 |\n", s, s
        printf "| - import `ansible.module_utils.basic` from the payload zip (no .pyc) | %.0f | %.0f | %.0f |\n", pb, vb, vb - pb
        printf "| - import the module and its module_utils from the zip | %.0f | %.0f | %.0f |\n", pm, vm, vm - pm
        printf "| - the module'"'"'s work after the imports (cProfile of `main()`, one run) | ~0 | %.0f | %.0f |\n", mm, mm
        printf "| -- of which libvirt calls (connection open and close included) | - | %.0f | %.0f |\n", ml, ml
        printf "| - the rest (writing and unpacking the payload, exit) | %.0f | %.0f | %.0f |\n", pr - s - pb - pm, vr - s - vb - vm - mm, (vr - s - vb - vm - mm) - (pr - s - pb - pm)
        printf "| Ansible on the controller (item - module process) | %.0f | %.0f | %.0f |\n", p - pr, v - vr, (v - vr) - (p - pr)
        printf "| size of the AnsiballZ file (KiB) | %.0f | %.0f | %.0f |\n", ps / 1024, vs / 1024, (vs - ps) / 1024
    }'
    echo
    echo "- slowest imports of the vm module process (\`-X importtime\`, own ms, inflated by the measurement): ${prof[vm_top]}"
    echo "- libvirt calls in vm's \`main()\` (count, ms): ${prof[main_calls]}"
} >"$out"
cat "$out"
log "written to $out"
