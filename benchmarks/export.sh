#!/usr/bin/env bash
# export.sh - time virtops.libvirt.export of an 8 GiB qcow2 disk holding ~1 GiB of data.
#
#   floors:  (a1) qemu-img convert to a streamOptimized vmdk
#            (a2) qemu-img convert to a compressed qcow2 (-c)
#            (a3) qemu-img convert to a qcow2
#            (a4) (a3), then tar of it through zstd -T0 (what a careful shell script does for an archive)
#   naive:   (n)  tar czf of the raw disk (GNU tar and gzip, what a naive export does)
#   export:  (b1) format vmdk of the volume          (floor a1)
#            (b2) format qcow2, compressed, of the volume (floor a2)
#            (b3) format ova of a stopped VM with that disk  (floor a1)
#            (b4) format tar.zst of that VM           (floor a3)
#
# Every output is checked (qemu-img compare with the source, after unpacking OVA and archive), so a
# variant that does nothing fails.  Brings up its own lab (LAB_NS_PREFIX/LAB_STATE_DIR, default
# vbexport and /var/tmp/virtops-bench-export), its own dir pool and work directory, and removes all of
# it at the end.  Usage: benchmarks/export.sh   (as root; see benchmarks/README.md for the knobs)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lab=$root/tests/lab/lab.sh

export LAB_NS_PREFIX=${LAB_NS_PREFIX:-vbexport}
export LAB_STATE_DIR=${LAB_STATE_DIR:-/var/tmp/virtops-bench-export}
size_gib=${BENCH_SIZE_GIB:-8}
data_mib=${BENCH_DATA_MIB:-1024}
chunks=${BENCH_CHUNKS:-16}
pool=${BENCH_POOL:-vbench-export}
pool_dir=${BENCH_POOL_DIR:-/var/tmp/virtops-bench-export-pool}
out_dir=${BENCH_OUT_DIR:-/var/tmp/virtops-bench-export-out}
vm=vbench-export
results_dir=$root/benchmarks/results
cmdline="BENCH_SIZE_GIB=$size_gib BENCH_DATA_MIB=$data_mib $0${*:+ $*}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $size_gib =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZE_GIB must be a positive integer: '$size_gib'"
[[ $data_mib =~ ^[1-9][0-9]*$ ]] || die "BENCH_DATA_MIB must be a positive integer: '$data_mib'"
[[ $chunks =~ ^[1-9][0-9]*$ ]] || die "BENCH_CHUNKS must be a positive integer: '$chunks'"
((data_mib % chunks == 0)) || die "BENCH_DATA_MIB must be a multiple of BENCH_CHUNKS ($chunks)"
((data_mib < size_gib * 1024)) || die "BENCH_DATA_MIB must be less than the disk size"
for d in "$pool_dir" "$out_dir"; do
    [[ $d =~ ^/[A-Za-z0-9._/-]+$ ]] || die "directories must be absolute paths of [A-Za-z0-9._/-]: '$d'"
done
((EUID == 0)) || die "must run as root (the lab needs it)"
for tool in qemu-img zstd pigz tar gzip virsh python3 jq; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# ------------------------------------------------------------------ cleanup ---
work=""
uri=""
pool_made=0
out_made=0
vm_made=0
lab_state_existed=0
lab_started=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $uri && $vm_made == 1 ]]; then
        virsh -q -c "$uri" undefine "$vm" >/dev/null 2>&1
    fi
    if [[ -n $uri && $pool_made == 1 ]]; then
        virsh -q -c "$uri" pool-destroy "$pool" >/dev/null 2>&1
        virsh -q -c "$uri" pool-undefine "$pool" >/dev/null 2>&1
    fi
    # only the directories this run created
    [[ $pool_made == 1 && -d $pool_dir ]] && rm -rf "$pool_dir"
    [[ $out_made == 1 && -d $out_dir ]] && rm -rf "$out_dir"
    if [[ $lab_started == 1 ]]; then
        if [[ $lab_state_existed == 0 ]]; then "$lab" down --purge >&2; else "$lab" down >&2; fi
    fi
    [[ -n $work ]] && rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------- tools ---
# built and installed into this run's own BUILD_DIR and STAGE: a concurrent `make install` elsewhere
# cannot change the collection under a running playbook
work=$(mktemp -d /var/tmp/virtops-bench-export-work.XXXXXX)
log "make install BUILD_DIR=$work/build STAGE=$work/stage"
make -s -C "$root" install BUILD_DIR="$work/build" STAGE="$work/stage" >"$work/make-install.log" 2>&1 ||
    { tail -20 "$work/make-install.log" >&2; die "make install failed"; }
venv=$(<"$work/build/venv")
installed=$work/build/installed
[[ -f $installed/ansible_collections/virtops/libvirt/plugins/modules/export.py ]] || die "no collection in $installed"

# --------------------------------------------------------------------- lab ---
[[ -d $LAB_STATE_DIR ]] && lab_state_existed=1
if ((lab_state_existed)) && "$lab" status >/dev/null 2>&1; then
    log "lab $LAB_NS_PREFIX ($LAB_STATE_DIR) is already up: using it and leaving it up"
else
    lab_started=1
    log "lab up: LAB_NS_PREFIX=$LAB_NS_PREFIX LAB_STATE_DIR=$LAB_STATE_DIR"
    "$lab" up 1 >&2
fi
uri=$("$lab" uris | head -n1)
"$lab" inventory "$work/inventory.yml"

# ---------------------------------------------------------- pool and source ---
[[ ! -e $pool_dir ]] || die "$pool_dir already exists; remove it or set BENCH_POOL_DIR"
[[ ! -e $out_dir ]] || die "$out_dir already exists; remove it or set BENCH_OUT_DIR"
virsh -q -c "$uri" pool-info "$pool" >/dev/null 2>&1 && die "pool '$pool' already exists on $uri"
virsh -q -c "$uri" dominfo "$vm" >/dev/null 2>&1 && die "domain '$vm' already exists on $uri"
mkdir -m 0755 "$pool_dir"
pool_made=1
mkdir -m 0755 "$out_dir"
out_made=1
virsh -q -c "$uri" pool-define-as "$pool" dir --target "$pool_dir" >/dev/null
virsh -q -c "$uri" pool-start "$pool" >/dev/null

# The data: real files (the start of a tar stream of /usr: programs, libraries, text), in BENCH_CHUNKS
# pieces spread evenly over the disk, so the image has as many allocated extents with holes between.
raw=$work/source.raw
src=$pool_dir/bench-src.qcow2
log "making the source: ${size_gib} GiB, $data_mib MiB of data from /usr in $chunks pieces"
python3 -c '
import sys
path, size, data, chunks = sys.argv[1], int(sys.argv[2]) << 30, int(sys.argv[3]) << 20, int(sys.argv[4])
piece, stride = data // chunks, size // chunks
with open(path, "wb") as out:
    out.truncate(size)
    for i in range(chunks):
        buf = sys.stdin.buffer.read(piece)
        if len(buf) != piece:
            sys.exit("the tar stream of /usr ended early")
        out.seek(i * stride)
        out.write(buf)
' "$raw" "$size_gib" "$data_mib" "$chunks" < <(tar -cf - -C / usr 2>/dev/null) || die "could not write the source data"
qemu-img convert -f raw -O qcow2 "$raw" "$src"
virsh -q -c "$uri" pool-refresh "$pool" >/dev/null
allocated=$(qemu-img map -f qcow2 --output=json "$src" | jq '[.[] | select(.data) | .length] | add')
# (a little less than written: the zero blocks of tar's padding are not allocated)
((allocated >= data_mib * 1048576 * 9 / 10)) || die "the source holds $allocated bytes of data, expected ~$data_mib MiB"
cat >"$work/domain.xml" <<EOF
<domain type='qemu'>
  <name>$vm</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$src'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
EOF
virsh -q -c "$uri" define "$work/domain.xml" >/dev/null
vm_made=1

# ---------------------------------------------------------------- variants ---
cat >"$work/ansible.cfg" <<'EOF'
[defaults]
retry_files_enabled = False
EOF
cat >"$work/export.yml" <<'EOF'
- name: Export with virtops.libvirt.export
  hosts: lab1
  gather_facts: false
  tasks:
    - name: Export
      virtops.libvirt.export:
        uri: "{{ libvirt_uri }}"
        vm: "{{ bench_vm | default(omit, true) }}"
        volume: "{{ bench_volume | default(omit, true) }}"
        pool: "{{ bench_pool | default(omit, true) }}"
        format: "{{ bench_format }}"
        compressed: "{{ bench_compressed | bool }}"
        dest: "{{ bench_dest }}"
      register: result

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: "{{ bench_result }}"
        mode: "0644"
EOF

declare -A secs=() module_secs=() out_size=() load=()
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

same_content() { # $1 label, $2 image
    qemu-img compare -q -f qcow2 "$src" "$2" || die "$1: $2 differs from the source"
}

run_cmd() { # $1 variant, $2 output file, command...
    local v=$1 file=$2 t0 t1 l0
    shift 2
    l0=$(loadavg)
    t0=$(now)
    "$@"
    t1=$(now)
    secs[$v]=$(elapsed "$t0" "$t1")
    out_size[$v]=$(stat -c %s "$file")
    load[$v]="$l0-$(loadavg)"
}

run_export() { # $1 variant, $2 format, $3 compressed, $4 dest, $5 vm|volume
    local v=$1 t0 t1 l0 logf=$work/$1.log res=$work/$1.json
    local -a extra=(-e "bench_vm=" -e "bench_volume=bench-src.qcow2" -e "bench_pool=$pool")
    [[ $5 == vm ]] && extra=(-e "bench_vm=$vm" -e "bench_volume=" -e "bench_pool=")
    l0=$(loadavg)
    t0=$(now)
    (cd "$work" && env ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_COLLECTIONS_PATH="$installed" \
        "$venv/bin/ansible-playbook" -i inventory.yml "${extra[@]}" -e "bench_format=$2 bench_compressed=$3" \
        -e "bench_dest=$4 bench_result=$res" export.yml) >"$logf" 2>&1 ||
        { tail -30 "$logf" >&2; die "$v: ansible-playbook failed (log: $logf)"; }
    t1=$(now)
    secs[$v]=$(elapsed "$t0" "$t1")
    load[$v]="$l0-$(loadavg)"
    [[ $(jq -r .changed "$res") == true ]] || die "$v: the export did not report a change"
    module_secs[$v]=$(jq -r .duration "$res")
    out_size[$v]=$(jq -r .total_size "$res")
}

clean_out() { find "$out_dir" -mindepth 1 -delete; }

log "warming the page cache with the source (every variant then reads it from memory)"
cat "$src" "$raw" >/dev/null

# Each export runs right after its floor, so that both see about the same load; the long naive run is last.
log "(a1) qemu-img convert -O vmdk -o subformat=streamOptimized"
run_cmd a1 "$out_dir/a1.vmdk" qemu-img convert -f qcow2 -O vmdk -o subformat=streamOptimized "$src" "$out_dir/a1.vmdk"
same_content a1 "$out_dir/a1.vmdk"
clean_out
log "(b1) export format vmdk (volume)"
run_export b1 vmdk false "$out_dir/b1.vmdk" volume
same_content b1 "$out_dir/b1.vmdk"
clean_out
log "(b3) export format ova (VM)"
run_export b3 ova false "$out_dir/b3.ova" vm
[[ $(tar -tf "$out_dir/b3.ova" | tr '\n' ' ') == "$vm.ovf $vm.mf $vm-disk1.vmdk " ]] || die "b3: unexpected OVA members"
tar -xf "$out_dir/b3.ova" -C "$out_dir"
same_content b3 "$out_dir/$vm-disk1.vmdk"
clean_out
log "(a2) qemu-img convert -c -O qcow2"
run_cmd a2 "$out_dir/a2.qcow2" qemu-img convert -f qcow2 -O qcow2 -c "$src" "$out_dir/a2.qcow2"
same_content a2 "$out_dir/a2.qcow2"
clean_out
log "(b2) export format qcow2 compressed (volume)"
run_export b2 qcow2 true "$out_dir/b2.qcow2" volume
same_content b2 "$out_dir/b2.qcow2"
clean_out
log "(a3) qemu-img convert -O qcow2"
run_cmd a3 "$out_dir/a3.qcow2" qemu-img convert -f qcow2 -O qcow2 "$src" "$out_dir/a3.qcow2"
same_content a3 "$out_dir/a3.qcow2"
clean_out
log "(a4) qemu-img convert -O qcow2, then tar with zstd -T0"
convert_and_pack() {
    mkdir "$out_dir/disks"
    qemu-img convert -f qcow2 -O qcow2 "$src" "$out_dir/disks/vda.qcow2"
    tar -C "$out_dir" -I "zstd -T0 -3" -cf "$out_dir/a4.tar.zst" disks/vda.qcow2
}
run_cmd a4 "$out_dir/a4.tar.zst" convert_and_pack
rm -rf "$out_dir/disks"
tar -xf "$out_dir/a4.tar.zst" -C "$out_dir"
same_content a4 "$out_dir/disks/vda.qcow2"
clean_out
log "(b4) export format tar.zst (VM)"
run_export b4 tar.zst false "$out_dir/b4.tar.zst" vm
tar -xf "$out_dir/b4.tar.zst" -C "$out_dir"
same_content b4 "$out_dir/disks/vda.qcow2"
clean_out
log "(a5) qemu-img convert -O qcow2, then tar with pigz"
convert_and_pack_gz() {
    mkdir "$out_dir/disks"
    qemu-img convert -f qcow2 -O qcow2 "$src" "$out_dir/disks/vda.qcow2"
    tar -C "$out_dir" -I pigz -cf "$out_dir/a5.tar.gz" disks/vda.qcow2
}
run_cmd a5 "$out_dir/a5.tar.gz" convert_and_pack_gz
rm -rf "$out_dir/disks"
tar -xzf "$out_dir/a5.tar.gz" -C "$out_dir"
same_content a5 "$out_dir/disks/vda.qcow2"
clean_out
log "(b5) export format tar.gz (VM)"
run_export b5 tar.gz false "$out_dir/b5.tar.gz" vm
tar -xzf "$out_dir/b5.tar.gz" -C "$out_dir"
same_content b5 "$out_dir/disks/vda.qcow2"
clean_out
log "(n) tar czf of the raw disk"
run_cmd n "$out_dir/n.tar.gz" tar -czf "$out_dir/n.tar.gz" -C "$work" source.raw
[[ $(tar -tvzf "$out_dir/n.tar.gz" | awk '{ print $3, $6 }') == "$((size_gib << 30)) source.raw" ]] ||
    die "n: the tar.gz does not hold the raw disk"
clean_out

# ----------------------------------------------------------------- report ---
declare -A what=(
    [a1]="floor: \`qemu-img convert -O vmdk -o subformat=streamOptimized\`"
    [a2]="floor: \`qemu-img convert -c -O qcow2\`"
    [a3]="floor: \`qemu-img convert -O qcow2\`"
    [a4]="(a3), then \`tar -I 'zstd -T0 -3' -cf\` of it"
    [a5]="(a3), then \`tar -I pigz -cf\` of it"
    [n]="naive: \`tar czf\` of the raw disk (GNU tar, gzip)"
    [b1]="export \`format: vmdk\` (volume)"
    [b2]="export \`format: qcow2, compressed: true\` (volume)"
    [b3]="export \`format: ova\` (stopped VM)"
    [b4]="export \`format: tar.zst\` (stopped VM)"
    [b5]="export \`format: tar.gz\` (stopped VM)"
)
declare -A floor=([a1]=a1 [a2]=a2 [a3]=a3 [a4]=a3 [a5]=a3 [n]=n [b1]=a1 [b2]=a2 [b3]=a1 [b4]=a3 [b5]=a3)
virsh_version=$(virsh -c "$uri" version | awk -F': *' '/libvirt/ && /library/ { l = $2 } /Running hypervisor/ { h = $2 } END { print l ", running hypervisor " h }')
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$results_dir"
out=$results_dir/export-$stamp.md
{
    echo "## export: a ${size_gib} GiB qcow2 holding $data_mib MiB of data"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores ($(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "- $virsh_version; $(qemu-img --version | head -n1); zstd $(zstd --version | grep -o 'v[0-9][0-9.]*' | head -n1); $(gzip --version | head -n1); $(tar --version | head -n1); pigz: $(command -v pigz || echo 'not installed')"
    echo "- ansible-core $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)')"
    echo "- source: $allocated bytes allocated ($(awk -v a="$allocated" 'BEGIN { printf "%.0f", a / 1e6 }') MB) in $chunks extents; page cache warm; command: \`$cmdline\`"
    echo
    echo "| variant | what | seconds | module seconds | MB/s of allocated data | time ratio to its floor | time ratio to (n) | output MB | load avg before-after |"
    echo "|---|---|---:|---:|---:|---|---:|---:|---|"
    for v in a1 b1 b3 a2 b2 a3 a4 b4 a5 b5 n; do
        f=${floor[$v]}
        awk -v v="$v" -v w="${what[$v]}" -v s="${secs[$v]}" -v ms="${module_secs[$v]:-}" -v fs="${secs[$f]}" -v f="$f" \
            -v ns="${secs[n]}" -v a="$allocated" -v o="${out_size[$v]}" -v l="${load[$v]}" 'BEGIN {
                rs = (ms != "") ? ms : s
                printf "| (%s) | %s | %.1f | %s | %.0f | %s | %.3fx | %.0f | %s |\n", v, w, s,
                    (ms != "") ? sprintf("%.1f", ms) : "-", a / 1e6 / rs,
                    (v == f) ? "-" : sprintf("%.2fx of (%s)", rs / fs, f), rs / ns, o / 1e6, l }'
    done
    echo
    echo "MB/s and the ratios use the module's own duration for (b1)-(b5) (\"module seconds\": from reading the"
    echo "source to the last rename, without Ansible's start-up); \"seconds\" is the whole ansible-playbook run."
} >"$out"
cat "$out"
log "written to $out"
