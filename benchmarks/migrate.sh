#!/usr/bin/env bash
# migrate.sh - virtops.libvirt.migrate against raw `virsh migrate`, for the same running guest.
#
# Two lab hypervisors; two booted TCG guests of the lab's Debian image (tests/lab/guest-image.sh),
# each running a counter process started through the guest agent:
#   S  vbmig-s, its disk (a qcow2 overlay) in a directory both hosts see: memory only is copied
#   C  vbmig-c, its disk (the same kind of overlay) in lab1's own default pool: copy_storage all
# Each guest makes a round trip lab1 -> lab2 -> lab1, first with virsh, then with the module:
#   (a) virsh -c SRC migrate --live --p2p --persistent --undefinesource [--unsafe | --copy-storage-all]
#       VM qemu+tcp://DEST/system --migrateuri tcp://DEST   (C: then virsh vol-delete of the
#       source's copy, which must go before the VM can come back)
#   (b) one ansible-playbook run per leg: virtops.libvirt.migrate with the same URIs
#       (S: unsafe: true; C: copy_storage: all, remove_source_storage: true)
# After every leg the script checks that the VM runs on the destination only, that the counter is
# the same process (same pid, never exited) and still counts, and (C) that no copy is left on the
# source.  Ratios are (b) / (a) from the same run.
#
# Brings up its own lab (LAB_NS_PREFIX/LAB_STATE_DIR, default vbenchmig and
# /var/tmp/virtops-bench-mig) and removes what it made at the end.
# Usage: benchmarks/migrate.sh     (as root; knobs in benchmarks/README.md)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lab=$root/tests/lab/lab.sh

export LAB_NS_PREFIX=${LAB_NS_PREFIX:-vbenchmig}
export LAB_STATE_DIR=${LAB_STATE_DIR:-/var/tmp/virtops-bench-mig}
LAB_STATE_DIR=${LAB_STATE_DIR%/}
reps=${BENCH_REPS:-1}
memory=${BENCH_MEMORY_MIB:-384}
boot_wait=${BENCH_BOOT_WAIT:-900}
results_dir=$root/benchmarks/results
pool=vbmig-shared
shared_dir=$LAB_STATE_DIR/vbmig-shared
cmdline="BENCH_REPS=$reps BENCH_MEMORY_MIB=$memory $0${*:+ $*}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $reps =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer: '$reps'"
[[ $memory =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEMORY_MIB must be a positive integer: '$memory'"
[[ $LAB_NS_PREFIX != virtops-lab && $LAB_STATE_DIR != /var/tmp/virtops-lab ]] ||
    die "refusing to run against the default lab (LAB_NS_PREFIX=virtops-lab or LAB_STATE_DIR=/var/tmp/virtops-lab)"
((EUID == 0)) || die "must run as root (the lab needs it)"

# ------------------------------------------------------------------ cleanup ---
work=""
uri1=""
uri2=""
made_pool=0
lab_state_existed=0
lab_started=0

v1() { virsh -q -c "$uri1" "$@"; }
v2() { virsh -q -c "$uri2" "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    local u vm
    for u in "$uri1" "$uri2"; do
        [[ -n $u ]] || continue
        for vm in vbmig-s vbmig-c; do
            virsh -q -c "$u" destroy "$vm" >/dev/null 2>&1
            virsh -q -c "$u" undefine "$vm" >/dev/null 2>&1
        done
        virsh -q -c "$u" vol-delete --pool default vbmig-c.qcow2 >/dev/null 2>&1
        if ((made_pool)); then
            virsh -q -c "$u" pool-destroy "$pool" >/dev/null 2>&1
            virsh -q -c "$u" pool-undefine "$pool" >/dev/null 2>&1
        fi
    done
    if ((made_pool)) && [[ -d $shared_dir ]]; then
        rm -f "$shared_dir"/base.qcow2 "$shared_dir"/vbmig-s.qcow2
        rmdir "$shared_dir" || log "warning: $shared_dir is not empty, left in place"
    fi
    if ((lab_started)); then
        if ((lab_state_existed)); then "$lab" down >&2; else "$lab" down --purge >&2; fi
    fi
    [[ -n $work ]] && rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------- tools ---
work=$(mktemp -d /var/tmp/virtops-bench-work.XXXXXX)
log "make install BUILD_DIR=$work/build STAGE=$work/stage"
make -s -C "$root" install BUILD_DIR="$work/build" STAGE="$work/stage" >"$work/make-install.log" 2>&1 ||
    { tail -20 "$work/make-install.log" >&2; die "make install failed"; }
venv=$(<"$work/build/venv")
installed=$work/build/installed
[[ -f $installed/ansible_collections/virtops/libvirt/plugins/modules/migrate.py ]] || die "no migrate module in $installed"
git_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$root" status --porcelain -- plugins 2>/dev/null) ]]; then git_rev+=" (plugins/ has uncommitted changes)"; fi
log "guest image (built once per machine, cached)"
image_dir=$("$root/tests/lab/guest-image.sh" build)
img_cmdline=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["cmdline"])' "$image_dir/manifest.json")

# --------------------------------------------------------------------- lab ---
[[ -d $LAB_STATE_DIR ]] && lab_state_existed=1
lab_started=1
log "lab up 2: LAB_NS_PREFIX=$LAB_NS_PREFIX LAB_STATE_DIR=$LAB_STATE_DIR"
"$lab" up 2 >&2
eval "$("$lab" env)"
uri1=$LAB_URI_1
uri2=$LAB_URI_2
"$lab" inventory "$work/inventory.yml"

for vm in vbmig-s vbmig-c; do
    if v1 dominfo "$vm" >/dev/null 2>&1 || v2 dominfo "$vm" >/dev/null 2>&1; then die "domain $vm already exists"; fi
done
[[ ! -e $shared_dir ]] || die "$shared_dir already exists"
v1 pool-info "$pool" >/dev/null 2>&1 && die "pool $pool already exists on lab1"

# a directory both hosts see (the machine's filesystem), as a pool on each
mkdir -m 0755 "$shared_dir"
made_pool=1
for u in "$uri1" "$uri2"; do
    virsh -q -c "$u" pool-define-as "$pool" dir --target "$shared_dir" >/dev/null
    virsh -q -c "$u" pool-start "$pool" >/dev/null
done
cp "$image_dir/root.qcow2" "$shared_dir/base.qcow2"
v1 pool-refresh "$pool" >/dev/null
v1 vol-create-as "$pool" vbmig-s.qcow2 2G --format qcow2 --backing-vol base.qcow2 --backing-vol-format qcow2 >/dev/null
v1 vol-create-as default vbmig-c.qcow2 2G --format qcow2 --backing-vol "$shared_dir/base.qcow2" \
    --backing-vol-format qcow2 >/dev/null
v2 pool-refresh "$pool" >/dev/null

domain_xml() { # NAME DISK
    cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>$memory</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$image_dir/vmlinuz</kernel>
    <initrd>$image_dir/initrd.img</initrd>
    <cmdline>$img_cmdline cloud-init=disabled quiet</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <serial type='pty'/>
    <console type='pty'/>
  </devices>
</domain>
EOF
}
domain_xml vbmig-s "$shared_dir/vbmig-s.qcow2" >"$work/vbmig-s.xml"
domain_xml vbmig-c /var/lib/libvirt/images/vbmig-c.qcow2 >"$work/vbmig-c.xml"
for vm in vbmig-s vbmig-c; do
    v1 define "$work/$vm.xml" >/dev/null
    v1 start "$vm" >/dev/null
done

# ----------------------------------------------------------- guest agent ---
agent() { # URI VM JSON
    virsh -q -c "$1" qemu-agent-command "$2" "$3" 2>/dev/null
}
json_get() { # KEY PATH... from stdin
    python3 -c 'import json, sys
value = json.load(sys.stdin)["return"]
for key in sys.argv[1:]:
    value = value[key]
print(value)' "$@"
}

log "waiting for the guests' agents (TCG boot; up to ${boot_wait}s)"
deadline=$((SECONDS + boot_wait))
for vm in vbmig-s vbmig-c; do
    until agent "$uri1" "$vm" '{"execute":"guest-ping"}' >/dev/null; do
        ((SECONDS < deadline)) || die "$vm: the guest agent did not answer within ${boot_wait}s"
        sleep 3
    done
done
booted_after=$SECONDS

declare -A counter_pid=() counter_val=()
# shellcheck disable=SC2016 # expanded by the guest's shell
counter_script='i=0; while :; do i=$((i+1)); echo "$$ $i" > /run/vbmig-counter; sleep 1; done'
for vm in vbmig-s vbmig-c; do
    counter_pid[$vm]=$(agent "$uri1" "$vm" "$(python3 -c 'import json, sys
print(json.dumps({"execute": "guest-exec", "arguments": {"path": "/bin/sh", "arg": ["-c", sys.argv[1]]}}))' \
        "$counter_script")" | json_get pid)
    counter_val[$vm]=0
done
sleep 3

# read_counter URI VM: "PID COUNT" from the guest's counter file
read_counter() {
    local pid out i
    pid=$(agent "$1" "$2" '{"execute":"guest-exec","arguments":{"path":"/bin/cat","arg":["/run/vbmig-counter"],"capture-output":true}}' |
        json_get pid) || return 1
    for ((i = 0; i < 100; i++)); do
        out=$(agent "$1" "$2" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 1
        if [[ $(json_get exited <<<"$out") == True ]]; then
            python3 -c 'import base64, json, sys; print(base64.b64decode(json.load(sys.stdin)["return"]["out-data"]).decode().strip())' <<<"$out"
            return 0
        fi
        sleep 1
    done
    return 1
}

# verify VM WHERE(1|2) LABEL: on host WHERE only, the same counter process, counting; no stale copy
verify() {
    local vm=$1 where=$2 label=$3 here there got pid count exited
    if [[ $where == 1 ]]; then here=$uri1 there=$uri2; else here=$uri2 there=$uri1; fi
    [[ $(virsh -q -c "$here" domstate "$vm" 2>/dev/null) == running ]] || die "$label: $vm is not running on lab$where"
    if virsh -q -c "$there" dominfo "$vm" >/dev/null 2>&1; then die "$label: $vm is still defined on the source"; fi
    exited=$(agent "$here" "$vm" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":${counter_pid[$vm]}}}" |
        json_get exited) || die "$label: the guest agent of $vm does not answer on lab$where"
    [[ $exited == False ]] || die "$label: the counter process of $vm exited"
    got=$(read_counter "$here" "$vm") || die "$label: cannot read the counter of $vm"
    read -r pid count <<<"$got"
    [[ $pid == "${counter_pid[$vm]}" ]] || die "$label: counter pid $pid, expected ${counter_pid[$vm]}"
    ((count > counter_val[$vm])) || die "$label: the counter of $vm did not advance ($count after ${counter_val[$vm]})"
    counter_val[$vm]=$count
    if [[ $vm == vbmig-c ]]; then
        virsh -q -c "$there" pool-refresh default >/dev/null
        if virsh -q -c "$there" vol-info --pool default vbmig-c.qcow2 >/dev/null 2>&1; then
            die "$label: the source still has a copy of vbmig-c.qcow2"
        fi
    fi
}

# allocation (bytes) of vbmig-c's disk on host WHERE
allocation() {
    local u
    if [[ $1 == 1 ]]; then u=$uri1; else u=$uri2; fi
    virsh -q -c "$u" pool-refresh default >/dev/null
    virsh -q -c "$u" vol-info --bytes --pool default vbmig-c.qcow2 | awk '/^Allocation:/ { print $2 }'
}

# ---------------------------------------------------------------- variants ---
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
declare -A t=() alloc=()

addr_of() { if [[ $1 == 1 ]]; then echo "$LAB_ADDR_1"; else echo "$LAB_ADDR_2"; fi; }
uri_of() { if [[ $1 == 1 ]]; then echo "$uri1"; else echo "$uri2"; fi; }
tcp_of() { if [[ $1 == 1 ]]; then echo "$LAB_TCP_URI_1"; else echo "$LAB_TCP_URI_2"; fi; }

leg_virsh() { # VM FROM TO -> seconds
    local vm=$1 from=$2 to=$3 t0 t1 extra=()
    # libvirt calls a disk shared only on a network or cluster file system: the shared directory
    # here is a local one both hosts see, so (a) says --unsafe and (b) unsafe: true
    if [[ $vm == vbmig-c ]]; then extra=(--copy-storage-all); else extra=(--unsafe); fi
    t0=$(now)
    virsh -q -c "$(uri_of "$from")" migrate --live --p2p --persistent --undefinesource "${extra[@]}" \
        "$vm" "$(tcp_of "$to")" --migrateuri "tcp://$(addr_of "$to")" >&2
    if [[ $vm == vbmig-c ]]; then
        virsh -q -c "$(uri_of "$from")" vol-delete --pool default vbmig-c.qcow2 >/dev/null
    fi
    t1=$(now)
    elapsed "$t0" "$t1"
}

cat >"$work/leg.yml" <<'EOF'
- name: One migration leg
  hosts: lab1
  gather_facts: false
  tasks:
    - name: Marker t0
      ansible.builtin.set_fact:
        t0: "{{ now().timestamp() }}"
    - name: Migrate
      virtops.libvirt.migrate:
        name: "{{ vm }}"
        uri: "{{ src }}"
        dest_uri: "{{ dest }}"
        peer_uri: "{{ peer }}"
        migration_uri: "{{ data }}"
        copy_storage: "{{ copy }}"
        remove_source_storage: "{{ copy == 'all' }}"
        unsafe: "{{ copy == 'none' }}"
      register: mig
    - name: Marker t1
      ansible.builtin.set_fact:
        t1: "{{ now().timestamp() }}"
    - name: Marker t2
      ansible.builtin.set_fact:
        t2: "{{ now().timestamp() }}"
    - name: Report
      ansible.builtin.debug:
        msg: "BENCH_MARKS {{ t0 }} {{ t1 }} {{ t2 }} {{ mig.duration }} {{ mig.changed }} {{ mig.mode }}"
EOF

leg_module() { # VM FROM TO -> "wall task module_duration"
    local vm=$1 from=$2 to=$3 copy=none t0 t1 marks
    [[ $vm == vbmig-c ]] && copy=all
    t0=$(now)
    (cd "$work" && ANSIBLE_COLLECTIONS_PATH=$installed ANSIBLE_NOCOLOR=1 "$venv/bin/ansible-playbook" \
        -i "$work/inventory.yml" "$work/leg.yml" -e "vm=$vm" -e "src=$(uri_of "$from")" -e "dest=$(uri_of "$to")" \
        -e "peer=$(tcp_of "$to")" -e "data=tcp://$(addr_of "$to")" -e "copy=$copy") >"$work/leg.log" 2>&1 ||
        { tail -30 "$work/leg.log" >&2; die "ansible-playbook failed ($vm lab$from -> lab$to)"; }
    t1=$(now)
    marks=$(sed -n 's/.*"BENCH_MARKS \([^"]*\)".*/\1/p' "$work/leg.log")
    read -r m0 m1 m2 dur changed mode <<<"$marks"
    [[ $changed == True && $mode == live ]] || die "module leg $vm lab$from -> lab$to: changed=$changed mode=$mode"
    # the task alone: t0..t1 minus one marker's cost (t1..t2)
    printf '%s %s %s\n' "$(elapsed "$t0" "$t1")" \
        "$(awk -v a="$m0" -v b="$m1" -v c="$m2" 'BEGIN { printf "%.3f", (b - a) - (c - b) }')" "$dur"
}

run_variant() { # VM TOOL REP
    local vm=$1 tool=$2 rep=$3 out1 out2
    if [[ $tool == virsh ]]; then
        out1=$(leg_virsh "$vm" 1 2)
        [[ $vm == vbmig-c ]] && alloc[$vm,$tool,$rep]=$(allocation 2)
        verify "$vm" 2 "$vm virsh leg 1"
        out2=$(leg_virsh "$vm" 2 1)
        verify "$vm" 1 "$vm virsh leg 2"
    else
        out1=$(leg_module "$vm" 1 2)
        [[ $vm == vbmig-c ]] && alloc[$vm,$tool,$rep]=$(allocation 2)
        verify "$vm" 2 "$vm module leg 1"
        out2=$(leg_module "$vm" 2 1)
        verify "$vm" 1 "$vm module leg 2"
    fi
    t[$vm,$tool,$rep]="$out1|$out2"
    log "$vm $tool rep $rep: leg1 [$out1] leg2 [$out2]"
}

for ((rep = 1; rep <= reps; rep++)); do
    log "repetition $rep/$reps (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for vm in vbmig-s vbmig-c; do
        run_variant "$vm" virsh "$rep"
        run_variant "$vm" module "$rep"
    done
done

# ------------------------------------------------------------------ report ---
stamp=$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$results_dir"
out=$results_dir/migrate-$stamp.md
python3 - "$reps" >"$out.table" <<EOF
import statistics, sys
reps = int(sys.argv[1])
t = {$(for k in "${!t[@]}"; do printf '"%s": "%s", ' "$k" "${t[$k]}"; done)}
alloc = {$(for k in "${!alloc[@]}"; do printf '"%s": %s, ' "$k" "${alloc[$k]}"; done)}

def legs(vm, tool):
    runs = []
    for rep in range(1, reps + 1):
        l1, l2 = t["%s,%s,%d" % (vm, tool, rep)].split("|")
        runs.append((l1.split(), l2.split()))
    return runs

def med(values):
    return statistics.median(values)

print("| guest | variant | leg lab1->lab2 (s) | leg lab2->lab1 (s) | round trip (s) | ratio to (a) | all round trips (s) |")
print("|---|---|---:|---:|---:|---:|---|")
for vm, what in (("vbmig-s", "S: shared disk, memory only"), ("vbmig-c", "C: copy_storage all")):
    base = legs(vm, "virsh")
    a = med([float(l1[0]) + float(l2[0]) for l1, l2 in base])
    rows = [("(a) virsh migrate", [(float(l1[0]), float(l2[0])) for l1, l2 in base])]
    mod = legs(vm, "module")
    rows.append(("(b) ansible-playbook, whole run", [(float(l1[0]), float(l2[0])) for l1, l2 in mod]))
    rows.append(("(b) the migrate task alone", [(float(l1[1]), float(l2[1])) for l1, l2 in mod]))
    rows.append(("(b) the module's own \`duration\`", [(float(l1[2]), float(l2[2])) for l1, l2 in mod]))
    for label, runs in rows:
        trips = [x + y for x, y in runs]
        print("| %s | %s | %.2f | %.2f | %.2f | %.2fx | %s |" % (
            what, label, med([x for x, _ in runs]), med([y for _, y in runs]), med(trips), med(trips) / a,
            " ".join("%.2f" % v for v in trips)))
print()
for tool in ("virsh", "module"):
    values = [alloc["vbmig-c,%s,%d" % (tool, rep)] for rep in range(1, reps + 1)]
    print("- vbmig-c's disk on lab2 after leg 1, %s: %s MiB allocated" % (
        "(a) virsh (libvirt creates it)" if tool == "virsh" else "(b) module (the module creates it)",
        " / ".join("%.0f" % (v / 1048576.0) for v in values)))
EOF
{
    echo "# migrate.sh results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); git $git_rev"
    echo "- machine: $(nproc) cores ($(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "- libvirt $(virsh -q -c "$uri1" version | awk '/Using library/ { print $4 }'), QEMU $(virsh -q -c "$uri1" version | awk '/Running hypervisor/ { print $4 }'); $("$venv/bin/ansible" --version | head -n1)"
    echo "- lab: LAB_NS_PREFIX=$LAB_NS_PREFIX LAB_STATE_DIR=$LAB_STATE_DIR; guests: ${memory} MiB, 1 vCPU, TCG; agents answered after ${booted_after}s"
    echo "- load average at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- repetitions: $reps (median shown); command: \`$cmdline\`"
    echo
    cat "$out.table"
} >"$out"
rm -f "$out.table"
cat "$out"
log "written to $out"
