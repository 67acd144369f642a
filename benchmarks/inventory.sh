#!/usr/bin/env bash
# inventory.sh - listing 300 VMs on 3 hypervisors: virtops.libvirt.libvirt against community.libvirt.
#
# BENCH_VMS (300) defined, stopped VMs, spread evenly over BENCH_HOSTS (3) lab hypervisors, each
# made by the collection's own domain XML writer (the definition the vm module makes: 64 MiB,
# 1 vCPU, a NIC, tags and metadata), defined through the libvirt API. Then, timed around the whole
# `ansible-inventory --list` run, BENCH_REPS (3) times each, interleaved:
#   (0) start-up floor: ansible-inventory on an empty YAML inventory (each venv)
#   (1) virtops.libvirt.libvirt, one source with the 3 URIs (defaults: 8 workers, ip_source lease)
#   (2) the same with `workers: 1` (the hypervisors one after the other)
#   (3) the same with `ip_source: none`
#   (4) community.libvirt.libvirt, one source per URI (3 sources in one ansible-inventory run)
# plus `virsh list --all --name` of the 3 hosts, one after the other, as the libvirt floor.
# Then (5)-(7): (1), (2) and (4) again through a relay that holds back every byte between client
# and libvirtd by half of BENCH_RTT_MS (2) each way: a round trip like a LAN or VPN link to the
# hypervisors (the lab's unix sockets answer in ~0.1 ms). BENCH_RTT_MS=0 leaves these out.
# Every listing is checked: exactly BENCH_VMS bench hosts, BENCH_VMS / BENCH_HOSTS per hypervisor.
#
# Brings up its own lab (LAB_NS_PREFIX/LAB_STATE_DIR, default vbinv and /var/tmp/virtops-bench-inv)
# and removes the VMs, and the lab if it started it, at the end.
# Usage: benchmarks/inventory.sh      (as root; see benchmarks/README.md for the knobs)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VIRTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtops-libvirt}
lab=$root/tests/lab/lab.sh

export LAB_NS_PREFIX=${LAB_NS_PREFIX:-vbinv}
export LAB_STATE_DIR=${LAB_STATE_DIR:-/var/tmp/virtops-bench-inv}
LAB_STATE_DIR=${LAB_STATE_DIR%/}
vms=${BENCH_VMS:-300}
hosts=${BENCH_HOSTS:-3}
reps=${BENCH_REPS:-3}
rtt=${BENCH_RTT_MS:-2}
ansible_ver=${BENCH_ANSIBLE_VERSION:-12.3.0}
prefix=vbinv-       # domains vbinv-<host>-<n>
results_dir=$root/benchmarks/results
cmdline="BENCH_VMS=$vms BENCH_HOSTS=$hosts BENCH_REPS=$reps BENCH_RTT_MS=$rtt $0${*:+ $*}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $vms =~ ^[1-9][0-9]*$ ]] || die "BENCH_VMS must be a positive integer: '$vms'"
if ! [[ $hosts =~ ^[1-9][0-9]*$ ]] || ((hosts > 20)); then die "BENCH_HOSTS must be 1..20: '$hosts'"; fi
((vms % hosts == 0)) || die "BENCH_VMS ($vms) must be a multiple of BENCH_HOSTS ($hosts)"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer: '$reps'"
[[ $rtt =~ ^[0-9]+$ ]] || die "BENCH_RTT_MS must be a whole number of milliseconds: '$rtt'"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed for the CPU times (Debian: apt-get install time)"
[[ $LAB_NS_PREFIX != virtops-lab && $LAB_STATE_DIR != /var/tmp/virtops-lab ]] ||
    die "refusing to run against the default lab (LAB_NS_PREFIX=virtops-lab or LAB_STATE_DIR=/var/tmp/virtops-lab)"
((EUID == 0)) || die "must run as root (the lab needs it)"
per_host=$((vms / hosts))

# ------------------------------------------------------------------ cleanup ---
work=""
venv=""
installed=""
lab_state_existed=0
lab_started=0
defined=0
relay_pid=""
declare -a uris=() slow_uris=()

# bench_vms define|undefine: the domains of this benchmark on every lab host, through the libvirt API
bench_vms() {
    PYTHONPATH=$installed "$venv/bin/python" - "$1" "$prefix" "$per_host" "${uris[@]}" <<'EOF'
import sys
import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils import _domain, _xml

libvirt.registerErrorHandler(lambda *args: None, None)
action, prefix, per_host, uris = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
for index, uri in enumerate(uris, 1):
    conn = libvirt.open(uri)
    mine = [d for d in conn.listAllDomains(0) if d.name().startswith(prefix)]
    if action == "undefine":
        for dom in mine:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    else:
        if mine:
            sys.exit("%s: %d domains %s* exist already" % (uri, len(mine), prefix))
        for n in range(1, per_host + 1):
            name = "%sh%d-%03d" % (prefix, index, n)
            model = _domain.normalize(dict(
                memory=64, vcpus=1, interfaces=[dict(network="default")], graphics=dict(type="none"),
                tags=["bench", "h%d" % index], metadata=dict(role="bench%d" % (n % 5), owner="inventory.sh")))
            _domain.assign_targets(model)
            model = _domain.with_creation_defaults(model)
            model["virt_type"] = "qemu"
            conn.defineXML(_xml.to_string(_domain.build_xml(name, model)))
    conn.close()
EOF
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $relay_pid ]]; then kill "$relay_pid" 2>/dev/null; wait "$relay_pid" 2>/dev/null; fi
    if ((defined)); then bench_vms undefine || log "warning: could not remove every $prefix* domain"; fi
    if ((lab_started)); then
        if ((lab_state_existed == 0)); then "$lab" down --purge >&2; else "$lab" down >&2; fi
    fi
    [[ -n $work ]] && rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_script0=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------- tools ---
work=$(mktemp -d /var/tmp/virtops-bench-inv-work.XXXXXX)
log "make install BUILD_DIR=$work/build STAGE=$work/stage"
make -s -C "$root" install BUILD_DIR="$work/build" STAGE="$work/stage" >"$work/make-install.log" 2>&1 ||
    { tail -20 "$work/make-install.log" >&2; die "make install failed"; }
venv=$(<"$work/build/venv")
installed=$work/build/installed
[[ -f $installed/ansible_collections/virtops/libvirt/plugins/inventory/libvirt.py ]] || die "no inventory plugin in $installed"
git_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$root" status --porcelain -- plugins 2>/dev/null) ]]; then git_rev+=" (plugins/ has uncommitted changes)"; fi

# the `ansible` package (ships community.libvirt) in its own venv; shared with the other benchmarks
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
[[ -f $cl_dir/plugins/inventory/libvirt.py ]] || die "community.libvirt in ansible $ansible_ver has no inventory plugin"
cl_ver=$("$bench_venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' "$cl_dir/MANIFEST.json")
core_ours=$("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')
core_theirs=$("$bench_venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')

# --------------------------------------------------------------------- lab ---
[[ -d $LAB_STATE_DIR ]] && lab_state_existed=1
if ((lab_state_existed)) && "$lab" status >/dev/null 2>&1 && (($(wc -l < <("$lab" uris)) >= hosts)); then
    log "lab $LAB_NS_PREFIX ($LAB_STATE_DIR) is already up: using it and leaving it up"
else
    lab_started=1
    log "lab up $hosts: LAB_NS_PREFIX=$LAB_NS_PREFIX LAB_STATE_DIR=$LAB_STATE_DIR"
    "$lab" up "$hosts" >&2
fi
mapfile -t uris < <("$lab" uris | head -n "$hosts")
((${#uris[@]} == hosts)) || die "the lab has ${#uris[@]} hosts, expected $hosts"

log "defining $vms VMs ($per_host per host)"
t0=$(date +%s.%N)
defined=1
bench_vms define || die "defining the VMs failed"
define_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# ------------------------------------------------------------------- relay ---
# A unix socket per host that forwards to the host's libvirt socket, each chunk held back until
# RTT/2 after it arrived (order kept, no throughput limit): every libvirt RPC then costs one round trip.
if [[ $rtt != 0 ]]; then
    cat >"$work/relay.py" <<'EOF'
import asyncio
import sys
import time

ONE_WAY = float(sys.argv[1]) / 2000.0


async def pump(reader, writer):
    queue = asyncio.Queue()

    async def receive():
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + ONE_WAY, data))
            if not data:
                return

    async def send():
        while True:
            due, data = await queue.get()
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(receive(), send())


async def serve(upstream, reader, writer):
    up_reader, up_writer = await asyncio.open_unix_connection(upstream)
    await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer), return_exceptions=True)


async def main():
    for pair in sys.argv[2:]:
        listen, upstream = pair.split("=", 1)
        await asyncio.start_unix_server(lambda r, w, u=upstream: serve(u, r, w), path=listen)
    print("ready", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
EOF
    pairs=()
    for i in "${!uris[@]}"; do
        pairs+=("$work/relay$((i + 1)).sock=${uris[$i]#*socket=}")
        slow_uris+=("qemu:///system?socket=$work/relay$((i + 1)).sock")
    done
    "$venv/bin/python" "$work/relay.py" "$rtt" "${pairs[@]}" >"$work/relay.log" 2>&1 &
    relay_pid=$!
    for _ in $(seq 50); do
        if grep -q ready "$work/relay.log"; then break; fi
        sleep 0.2
    done
    grep -q ready "$work/relay.log" || { cat "$work/relay.log" >&2; die "the relay did not start"; }
    # what a connection costs (virsh version: open, a few RPCs, close), through the relay and directly
    t0=$(date +%s.%N)
    virsh -q -c "${slow_uris[0]}" version >/dev/null
    relay_check=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
    t0=$(date +%s.%N)
    virsh -q -c "${uris[0]}" version >/dev/null
    direct_check=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
fi

# ----------------------------------------------------------------- sources ---
mkdir "$work/ours" "$work/theirs"
{
    echo "plugin: virtops.libvirt.libvirt"
    echo "uris:"
    for u in "${uris[@]}"; do echo "  - \"$u\""; done
} >"$work/ours/default.libvirt.yml"
{ cat "$work/ours/default.libvirt.yml"; echo "workers: 1"; } >"$work/ours/serial.libvirt.yml"
{ cat "$work/ours/default.libvirt.yml"; echo "ip_source: none"; } >"$work/ours/noaddr.libvirt.yml"
for i in "${!uris[@]}"; do
    printf 'plugin: community.libvirt.libvirt\nuri: "%s"\n' "${uris[$i]}" >"$work/theirs/h$((i + 1)).yml"
done
if ((${#slow_uris[@]})); then
    mkdir "$work/slow-ours" "$work/slow-theirs"
    {
        echo "plugin: virtops.libvirt.libvirt"
        echo "uris:"
        for u in "${slow_uris[@]}"; do echo "  - \"$u\""; done
    } >"$work/slow-ours/default.libvirt.yml"
    { cat "$work/slow-ours/default.libvirt.yml"; echo "workers: 1"; } >"$work/slow-ours/serial.libvirt.yml"
    for i in "${!slow_uris[@]}"; do
        printf 'plugin: community.libvirt.libvirt\nuri: "%s"\n' "${slow_uris[$i]}" >"$work/slow-theirs/h$((i + 1)).yml"
    done
fi
echo "all: {}" >"$work/empty.yml"

# ------------------------------------------------------------------ timing ---
declare -A times=() cpu=() sizes=()
now() { date +%s.%N; }

# check_listing FILE PLUGIN: the JSON has $vms bench hosts, $per_host on each hypervisor
check_listing() {
    python3 - "$1" "$2" "$prefix" "$vms" "$per_host" "$hosts" <<'EOF' || die "listing $1 ($2) is wrong"
import collections, json, sys
path, plugin, prefix, vms, per_host, hosts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
hostvars = json.load(open(path))["_meta"]["hostvars"]
ours = sorted(h for h in hostvars if h.startswith(prefix))
if len(ours) != vms:
    sys.exit("%s: %d bench hosts, expected %d" % (path, len(ours), vms))
plain = lambda v: v["__ansible_unsafe"] if isinstance(v, dict) and "__ansible_unsafe" in v else v
if plugin == "ours":
    per = collections.Counter(plain(hostvars[h]["libvirt_hypervisor"]) for h in ours)
    states = collections.Counter(plain(hostvars[h]["libvirt_state"]) for h in ours)
    if states != {"stopped": vms}:
        sys.exit("%s: states %s" % (path, dict(states)))
else:
    per = collections.Counter(h.split("-")[1] for h in ours)  # vbinv-h1-001
    if any(plain(hostvars[h]["info"]["state"]) != "shutoff" for h in ours):
        sys.exit("%s: not every VM is shutoff" % path)
if sorted(per.values()) != [per_host] * hosts:
    sys.exit("%s: VMs per hypervisor %s" % (path, dict(per)))
EOF
}

run_inventory() { # $1 label, $2 venv, $3 source (file or dir), $4 ours|theirs|none
    local out=$work/$1-$rep.json t0 t1 used
    local -a env=(ANSIBLE_NOCOLOR=1 ANSIBLE_INVENTORY_UNPARSED_FAILED=1 ANSIBLE_LOCALHOST_WARNING=0)
    if [[ $2 == "$venv" ]]; then env+=(ANSIBLE_COLLECTIONS_PATH="$installed"); fi
    t0=$(now)
    (cd "$work" && env -u ANSIBLE_COLLECTIONS_PATH "${env[@]}" /usr/bin/time -f '%U %S' -o "$work/cpu" \
        "$2/bin/ansible-inventory" -i "$3" --list) \
        >"$out" 2>"$work/$1-$rep.err" || { tail -20 "$work/$1-$rep.err" >&2; die "$1: ansible-inventory failed"; }
    t1=$(now)
    [[ $4 == none ]] || check_listing "$out" "$4"
    # community.libvirt warns about the UUID groups it makes; our runs must be clean
    if [[ $4 != theirs ]] && grep -q 'WARNING' "$work/$1-$rep.err"; then cat "$work/$1-$rep.err" >&2; die "$1: warnings"; fi
    times[$1]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') "
    used=$(tail -n1 "$work/cpu")
    cpu[$1]+="$(awk -v u="${used% *}" -v s="${used#* }" 'BEGIN { printf "%.2f", u + s }') "
    sizes[$1]=$(stat -c %s "$out")
}

run_virsh() {
    local t0 t1 u count=0
    t0=$(now)
    for u in "${uris[@]}"; do
        count=$((count + $(virsh -q -c "$u" list --all --name | grep -c "^$prefix")))
    done
    t1=$(now)
    ((count == vms)) || die "virsh lists $count bench VMs, expected $vms"
    times[virsh]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') "
}

log "warm-up (one untimed listing with each plugin)"
rep=0
run_inventory warm-ours "$venv" ours/default.libvirt.yml ours
run_inventory warm-theirs "$bench_venv" theirs theirs
times=() cpu=()
for ((rep = 1; rep <= reps; rep++)); do
    log "repetition $rep/$reps"
    run_virsh
    run_inventory empty-ours "$venv" empty.yml none
    run_inventory empty-theirs "$bench_venv" empty.yml none
    run_inventory ours "$venv" ours/default.libvirt.yml ours
    run_inventory theirs "$bench_venv" theirs theirs
    run_inventory serial "$venv" ours/serial.libvirt.yml ours
    run_inventory noaddr "$venv" ours/noaddr.libvirt.yml ours
    if ((${#slow_uris[@]})); then
        run_inventory slow-ours "$venv" slow-ours/default.libvirt.yml ours
        run_inventory slow-serial "$venv" slow-ours/serial.libvirt.yml ours
        run_inventory slow-theirs "$bench_venv" slow-theirs theirs
    fi
done

# ----------------------------------------------------------------- results ---
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
fastest() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | head -n1; }
declare -A med=() cmed=() best=()
for k in "${!times[@]}"; do med[$k]=$(median "${times[$k]}"); best[$k]=$(fastest "${times[$k]}"); done
for k in "${!cpu[@]}"; do cmed[$k]=$(median "${cpu[$k]}"); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

stamp=$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$results_dir"
out=$results_dir/inventory-$stamp.md
{
    echo "### inventory.sh, $(date -u '+%Y-%m-%d %H:%M') UTC"
    echo
    echo "- command: \`$cmdline\`"
    echo "- virtops.libvirt at $git_rev, ansible-core $core_ours; community.libvirt $cl_ver from ansible $ansible_ver (ansible-core $core_theirs)"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, libvirt $(virsh --version); load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $vms stopped VMs, $per_host on each of $hosts lab hypervisors (defined in ${define_s} s through the API); repetitions: $reps (median shown)"
    echo
    echo "Wall-clock seconds of the whole \`ansible-inventory --list\` run, and the CPU seconds (user + system) of that"
    echo "process; libvirtd's own work is in the lab's daemons and counts in neither CPU column."
    echo
    echo "| variant | what | seconds | minus start-up | ratio to (1) | fastest run | fastest minus start-up | ratio to (1) | CPU s | CPU minus start-up | CPU ratio to (1) | output KiB | all runs (s) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    # shellcheck disable=SC2016 # Markdown code, not shell
    printf '| floor | `virsh list --all --name` of the %d hosts, one after the other | %s | | | %s | | | | | | | %s |\n' \
        "$hosts" "${med[virsh]}" "${best[virsh]}" "${times[virsh]}"
    # shellcheck disable=SC2016
    printf '| (0) | `ansible-inventory --list` of an empty inventory, virtops venv | %s | | | %s | | | %s | | | | %s |\n' \
        "${med[empty-ours]}" "${best[empty-ours]}" "${cmed[empty-ours]}" "${times[empty-ours]}"
    printf '| (0) | the same, ansible %s venv | %s | | | %s | | | %s | | | | %s |\n' \
        "$ansible_ver" "${med[empty-theirs]}" "${best[empty-theirs]}" "${cmed[empty-theirs]}" "${times[empty-theirs]}"
    variants=(ours serial noaddr theirs)
    if ((${#slow_uris[@]})); then variants+=(slow-ours slow-serial slow-theirs); fi
    for v in "${variants[@]}"; do
        case $v in
        ours) label=1 what="virtops.libvirt.libvirt, 1 source with $hosts URIs (8 workers, ip_source lease)" base=empty-ours ;;
        serial) label=2 what="virtops.libvirt.libvirt, \`workers: 1\`" base=empty-ours ;;
        noaddr) label=3 what="virtops.libvirt.libvirt, \`ip_source: none\`" base=empty-ours ;;
        theirs) label=4 what="community.libvirt.libvirt $cl_ver, $hosts sources (one per URI)" base=empty-theirs ;;
        slow-ours) label=5 what="(1) with a $rtt ms round trip to each hypervisor" base=empty-ours ;;
        slow-serial) label=6 what="(2) with a $rtt ms round trip" base=empty-ours ;;
        slow-theirs) label=7 what="(4) with a $rtt ms round trip" base=empty-theirs ;;
        esac
        printf '| (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n' "$label" "$what" \
            "${med[$v]}" "$(minus "${med[$v]}" "${med[$base]}")" "$(ratio "${med[$v]}" "${med[ours]}")" \
            "${best[$v]}" "$(minus "${best[$v]}" "${best[$base]}")" "$(ratio "${best[$v]}" "${best[ours]}")" \
            "${cmed[$v]}" "$(minus "${cmed[$v]}" "${cmed[$base]}")" "$(ratio "${cmed[$v]}" "${cmed[ours]}")" \
            "$((sizes[$v] / 1024))" "${times[$v]}"
    done
    echo
    echo "community.libvirt / virtops.libvirt, wall clock (medians): $(ratio "${med[theirs]}" "${med[ours]}") overall, $(ratio \
        "$(minus "${med[theirs]}" "${med[empty-theirs]}")" "$(minus "${med[ours]}" "${med[empty-ours]}")") without Ansible's start-up;"
    echo "fastest runs: $(ratio "${best[theirs]}" "${best[ours]}") overall, $(ratio \
        "$(minus "${best[theirs]}" "${best[empty-theirs]}")" "$(minus "${best[ours]}" "${best[empty-ours]}")") without Ansible's start-up;"
    echo "CPU: $(ratio "${cmed[theirs]}" "${cmed[ours]}") overall, $(ratio \
        "$(minus "${cmed[theirs]}" "${cmed[empty-theirs]}")" "$(minus "${cmed[ours]}" "${cmed[empty-ours]}")") without Ansible's start-up."
    if ((${#slow_uris[@]})); then
        echo "With a $rtt ms round trip, community.libvirt / virtops.libvirt: $(ratio "${med[slow-theirs]}" "${med[slow-ours]}") overall, $(ratio \
            "$(minus "${med[slow-theirs]}" "${med[empty-theirs]}")" "$(minus "${med[slow-ours]}" "${med[empty-ours]}")") without Ansible's start-up (medians);"
        echo "fastest runs: $(ratio "${best[slow-theirs]}" "${best[slow-ours]}") overall, $(ratio \
            "$(minus "${best[slow-theirs]}" "${best[empty-theirs]}")" "$(minus "${best[slow-ours]}" "${best[empty-ours]}")") without Ansible's start-up."
        echo "(\`virsh version\` took $relay_check s through the relay and $direct_check s directly.)"
    fi
    echo "Script runtime: $(($(date +%s) - t_script0)) s."
} | tee "$out"
log "results written to $out"
