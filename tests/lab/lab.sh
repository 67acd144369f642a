#!/usr/bin/env bash
# lab.sh - a local multi-hypervisor libvirt lab for testing virtops.libvirt.
#
# Each lab host is a libvirtd + virtlogd pair running in its own network
# namespace (virtops-labN) and its own private mount namespace, where
# per-host directories under the state dir are bind-mounted over
# /etc/libvirt, /var/lib/libvirt, /run/libvirt, /var/cache/libvirt and
# /var/log/libvirt.  The hosts are joined by a bridge living in a separate
# namespace (virtops-lab-sw).  Nothing is configured in the machine's own
# network namespace and nothing is mounted in the machine's mount namespace.
#
# Usage: lab.sh up [N] [--fresh] | down [--purge] | status | uris | env | inventory FILE [N]
#        | libvirtd stop|start N | crash N
# See tests/lab/README.md.
set -euo pipefail

STATE_ROOT=${LAB_STATE_DIR:-/var/tmp/virtops-lab}
STATE_ROOT=${STATE_ROOT%/}
NS_PREFIX=${LAB_NS_PREFIX:-virtops-lab}
SW_NS=$NS_PREFIX-sw
BRIDGE=labbr0
NET_PREFIX=10.213.0
NET_BITS=24
MAX_HOSTS=20
WAIT_SECS=${LAB_WAIT_SECS:-30}
PROG=${0##*/}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $PROG up [N] [--fresh]  start N lab hypervisors (default \$LAB_HOSTS or 1); --fresh: when no
                             host is running, remove what earlier runs left in the state dir first
       $PROG down [--purge]  stop everything the lab started (--purge: remove state dir)
       $PROG status          one line per host; non-zero exit if a host is down
       $PROG uris            one libvirt URI per line
       $PROG env             shell assignments LAB_HOSTS, LAB_URI_i, LAB_ADDR_i, ...
       $PROG inventory FILE [N]  write an Ansible YAML inventory (of the first N hosts)
       $PROG libvirtd stop N   stop only libvirtd of host N (TERM by its pid file): a fault for tests;
                             its guests, networks and virtlogd keep running
       $PROG libvirtd start N  start it again in host N's namespaces; returns when it answers
       $PROG crash N         host N fails: SIGKILL to its libvirtd, its QEMU processes and virtlogd (by their
                             pid files); its namespace stays, 'down' and 'up' clean up after it
state dir: $STATE_ROOT (LAB_STATE_DIR); namespaces: ${NS_PREFIX}N, $SW_NS (LAB_NS_PREFIX)
EOF
    exit 2
}

# ---------------------------------------------------------------- naming ---
host_dir() { printf '%s/host%s' "$STATE_ROOT" "$1"; }
host_ns() { printf '%s%s' "$NS_PREFIX" "$1"; }
host_name() { printf 'lab%s' "$1"; }
host_addr() { printf '%s.%s' "$NET_PREFIX" "$((10 + $1))"; }
host_sock() { printf '%s/run/libvirt-sock' "$(host_dir "$1")"; }
host_uri() { printf 'qemu:///system?socket=%s' "$(host_sock "$1")"; }
host_tcp_uri() { printf 'qemu+tcp://%s/system' "$(host_addr "$1")"; }
sw_port() { printf 'vlab%s' "$1"; }

check_state_root() {
    [[ $STATE_ROOT =~ ^/[A-Za-z0-9._/-]+$ ]] ||
        die "LAB_STATE_DIR must be an absolute path of [A-Za-z0-9._/-] characters: '$STATE_ROOT'"
    case "$STATE_ROOT" in
    / | /etc* | /usr* | /bin* | /sbin* | /lib* | /boot* | /proc* | /sys* | /dev* | /run | /var | /var/tmp | /tmp | /root | /home)
        die "refusing to use '$STATE_ROOT' as the lab state dir" ;;
    esac
    [[ $NS_PREFIX =~ ^[a-z][a-z0-9-]{0,19}$ ]] ||
        die "LAB_NS_PREFIX must match [a-z][a-z0-9-]{0,19}: '$NS_PREFIX'"
    # unix socket paths are limited to 107 bytes
    local s
    s=$(host_sock "$MAX_HOSTS")
    ((${#s} < 100)) || die "LAB_STATE_DIR is too long for a unix socket path: $s"
}

check_count() {
    if ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > MAX_HOSTS)); then
        die "number of hosts must be 1..$MAX_HOSTS, got '$1'"
    fi
}

need_root() { ((EUID == 0)) || die "must run as root"; }

# Number of hosts the lab was last brought up with (for status/uris/env/inventory).
lab_count() {
    local n=""
    if [[ -r $STATE_ROOT/hosts.count ]]; then
        n=$(<"$STATE_ROOT/hosts.count")
    fi
    [[ -n $n ]] || n=${LAB_HOSTS:-1}
    check_count "$n"
    printf '%s' "$n"
}

# ------------------------------------------------------------- processes ---
ns_exists() { [[ -e /run/netns/$1 ]]; }

ns_inode() {
    # inode of a named network namespace, empty if it does not exist
    if ns_exists "$1"; then stat -L -c %i "/run/netns/$1" 2>/dev/null || true; fi
}

# pid_ok PID COMM_PREFIX [NETNS_INODE]: PID is a live (non-zombie) process whose
# comm starts with COMM_PREFIX and which lives in the given network namespace
# (or, when no inode is given, in a network namespace other than ours).
pid_ok() {
    local pid=$1 prefix=$2 ino=${3:-} comm state net
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -d /proc/$pid ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$prefix"* ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]] || return 1
    net=$(readlink "/proc/$pid/ns/net" 2>/dev/null) || return 1
    if [[ -n $ino ]]; then
        [[ $net == "net:[$ino]" ]] || return 1
    else
        [[ $net != "$(readlink /proc/self/ns/net)" ]] || return 1
    fi
    return 0
}

read_pid() {
    if [[ -r $1 ]]; then tr -dc '0-9' <"$1" || true; fi
}

pidfile_alive() { # FILE COMM_PREFIX [NETNS_INODE]
    local pid
    pid=$(read_pid "$1")
    [[ -n $pid ]] && pid_ok "$pid" "$2" "${3:-}"
}

wait_gone() { # PID COMM_PREFIX INODE TENTHS
    local i
    for ((i = 0; i < $4; i++)); do
        pid_ok "$1" "$2" "$3" || return 0
        sleep 0.1
    done
    return 1
}

# kill_pidfile FILE COMM_PREFIX NETNS_INODE: stop the process named in FILE,
# only if it is still the process we started (comm + network namespace).
kill_pidfile() {
    local file=$1 prefix=$2 ino=${3:-} pid
    [[ -e $file ]] || return 0
    pid=$(read_pid "$file")
    if [[ -n $pid ]] && pid_ok "$pid" "$prefix" "$ino"; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" "$prefix" "$ino" 100; then
            log "pid $pid ($prefix) ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" "$prefix" "$ino" 50 || log "warning: pid $pid ($prefix) is still alive"
        fi
    fi
    rm -f "$file"
}

# pids of all processes in the network namespace with inode INO
pids_in_netns() {
    local ino=$1 p
    [[ -n $ino ]] || return 0
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/ns/net" 2>/dev/null) == "net:[$ino]" ]] && printf '%s\n' "${p#/proc/}"
    done
    return 0
}

virsh_q() { # URI ARGS...: virsh with a time limit, no output
    local uri=$1
    shift
    timeout 20 virsh -q -c "$uri" "$@"
}

host_alive() { # i
    local d ino
    d=$(host_dir "$1")
    ino=$(ns_inode "$(host_ns "$1")")
    [[ -n $ino ]] &&
        pidfile_alive "$d/pids/libvirtd.pid" libvirtd "$ino" &&
        pidfile_alive "$d/pids/virtlogd.pid" virtlogd "$ino"
}

# Serialise lab.sh invocations (fd 9; never inherited by the daemons).
take_lock() {
    exec 9>"$STATE_ROOT/.lock"
    flock -w "${LAB_LOCK_WAIT_SECS:-900}" 9 || die "another lab.sh holds $STATE_ROOT/.lock"
}

host_answers() { timeout 5 virsh -c "$(host_uri "$1")" version >/dev/null 2>&1; }

# --------------------------------------------------------------- network ---
ensure_switch() {
    if ! ns_exists "$SW_NS"; then
        ip netns add "$SW_NS"
    fi
    ip -n "$SW_NS" link set lo up
    if ! ip -n "$SW_NS" link show "$BRIDGE" >/dev/null 2>&1; then
        ip -n "$SW_NS" link add "$BRIDGE" type bridge
    fi
    ip -n "$SW_NS" link set "$BRIDGE" up
}

ensure_host_net() { # i
    local i=$1 ns port addr
    ns=$(host_ns "$i")
    port=$(sw_port "$i")
    addr=$(host_addr "$i")
    ns_exists "$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
        # a stale switch port whose peer is gone cannot exist (veths die in
        # pairs), but one whose peer sits elsewhere could: remove it first
        ip -n "$SW_NS" link del "$port" >/dev/null 2>&1 || true
        # both ends are created directly inside lab namespaces
        ip -n "$SW_NS" link add "$port" type veth peer name eth0 netns "$ns"
    fi
    ip -n "$SW_NS" link set "$port" master "$BRIDGE"
    ip -n "$SW_NS" link set "$port" up
    if ! ip -n "$ns" -4 addr show dev eth0 | grep -q "inet $addr/"; then
        ip -n "$ns" addr add "$addr/$NET_BITS" dev eth0
    fi
    ip -n "$ns" link set eth0 up
}

# ------------------------------------------------------------ host state ---
write_configs() { # i
    local i=$1 d addr uuid
    d=$(host_dir "$i")
    addr=$(host_addr "$i")
    if [[ ! -s $d/host_uuid ]]; then
        cat /proc/sys/kernel/random/uuid >"$d/host_uuid"
    fi
    uuid=$(<"$d/host_uuid")

    cat >"$d/etc/libvirtd.conf" <<EOF
# Generated by tests/lab/lab.sh for lab host $(host_name "$i"); rewritten on every 'up'.
listen_tls = 0
listen_tcp = 1
listen_addr = "$addr"
auth_tcp = "none"
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$uuid"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF

    cat >"$d/etc/virtlogd.conf" <<EOF
# Generated by tests/lab/lab.sh for lab host $(host_name "$i"); rewritten on every 'up'.
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
EOF

    cat >"$d/etc/qemu.conf" <<EOF
# Generated by tests/lab/lab.sh for lab host $(host_name "$i"); rewritten on every 'up'.
# QEMU runs as root so it can open /dev/kvm (mode 0600 on the machine) without
# any change to the machine's /dev/kvm.
user = "root"
group = "root"
# No AppArmor/SELinux/DAC relabelling of the machine's files.
security_driver = "none"
remember_owner = 0
# Several lab hosts share one kernel: per-domain cgroups would collide
# between hosts (same domain name/id) and litter the machine's cgroup tree.
cgroup_controllers = [ ]
# Migrations stay on the lab network.
migration_address = "$addr"
migration_host = "$addr"
EOF
}

prepare_host() { # i
    local i=$1 d sub
    d=$(host_dir "$i")
    for sub in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
        [[ -d $sub ]] || die "$sub does not exist: install the libvirt packages (tests/lab/install-deps.sh)"
    done
    mkdir -p "$d"/{etc,lib,run,cache,log,pids,mnt/run}
    mkdir -p "$d"/lib/{images,qemu,dnsmasq,network,boot} "$d"/cache/qemu "$d"/log/qemu
    if [[ ! -e $d/etc/.lab-copied ]]; then
        cp -a /etc/libvirt/. "$d/etc/"
        # Keep configuration only: no domains, pools, secrets, hooks or extra
        # networks of the machine leak into a lab host.
        rm -f "$d"/etc/qemu/*.xml "$d"/etc/qemu/autostart/*.xml
        rm -rf "$d"/etc/storage "$d"/etc/secrets
        find "$d/etc/hooks" -mindepth 1 -delete 2>/dev/null || true
        find "$d/etc/qemu/networks" -maxdepth 1 -name '*.xml' ! -name default.xml -delete 2>/dev/null || true
        touch "$d/etc/.lab-copied"
    fi
    # QEMU capability probing costs seconds per fresh host: seed the cache
    # from another lab host (same binaries, same kernel; libvirt re-validates).
    if [[ -z $(ls -A "$d/cache/qemu/capabilities" 2>/dev/null) ]]; then
        local other
        for other in "$STATE_ROOT"/host*/cache/qemu/capabilities; do
            if [[ $other != "$d/cache/qemu/capabilities" && -n $(ls -A "$other" 2>/dev/null) ]]; then
                mkdir -p "$d/cache/qemu/capabilities"
                cp -p "$other"/*.xml "$d/cache/qemu/capabilities/" 2>/dev/null || true
                break
            fi
        done
    fi
    # tests define their own networks
    rm -f "$d/etc/qemu/networks/autostart/default.xml"
    write_configs "$i"
}

write_hosts_file() { # N
    local n=$1 j f=$STATE_ROOT/hosts
    # rewritten in place: running hosts have this inode bind-mounted on /etc/hosts
    {
        printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
        for ((j = 1; j <= (n > 9 ? n : 9); j++)); do
            printf '%s\t%s\n' "$(host_addr "$j")" "$(host_name "$j")"
        done
    } >"$f"
}

# The script run inside the host's private mount + UTS namespace (and its
# network namespace).  Arguments: host dir, hostname, hosts file.
# shellcheck disable=SC2016
INNER_SCRIPT='
set -eu
d=$1
# Keep a handle on the machine'"'"'s /run, then hide it behind a private tmpfs so
# the lab libvirtd sees no machine daemons (dbus, systemd, firewalld, nscd)
# and /run/libvirt can be a mount point without touching the machine.
mount --rbind /run "$d/mnt/run"
mount -t tmpfs -o mode=0755,nosuid,nodev virtops-lab-run /run
mkdir -p /run/libvirt /run/lock /run/lvm
# LVM locks are kernel-wide business: share them with the machine
mount --rbind "$d/mnt/run/lock" /run/lock
if [ -d "$d/mnt/run/lvm" ]; then mount --rbind "$d/mnt/run/lvm" /run/lvm; fi
umount -l "$d/mnt/run"
ln -s /dev/shm /run/shm
mount --bind "$d/run" /run/libvirt
mount --bind "$d/etc" /etc/libvirt
mount --bind "$d/lib" /var/lib/libvirt
mount --bind "$d/cache" /var/cache/libvirt
mount --bind "$d/log" /var/log/libvirt
mount --bind "$3" /etc/hosts
hostname "$2"
virtlogd -d -p "$d/pids/virtlogd.pid"
libvirtd --listen -d -p "$d/pids/libvirtd.pid"
'

# stop_host_procs i: stop everything host i started (by pid files only)
stop_host_procs() {
    local i=$1 d ns ino uri f dom net leftovers
    d=$(host_dir "$i")
    ns=$(host_ns "$i")
    ino=$(ns_inode "$ns")
    uri=$(host_uri "$i")
    if [[ -n $ino ]] && pidfile_alive "$d/pids/libvirtd.pid" libvirtd "$ino"; then
        # running domains and networks first, through the host's own libvirt
        while read -r dom; do
            [[ -n $dom ]] || continue
            virsh_q "$uri" destroy "$dom" >/dev/null 2>&1 || log "warning: $(host_name "$i"): could not destroy domain $dom"
        done < <(virsh_q "$uri" list --name 2>/dev/null || true)
        while read -r net; do
            [[ -n $net ]] || continue
            virsh_q "$uri" net-destroy "$net" >/dev/null 2>&1 || log "warning: $(host_name "$i"): could not destroy network $net"
        done < <(virsh_q "$uri" net-list --name 2>/dev/null || true)
    fi
    kill_pidfile "$d/pids/libvirtd.pid" libvirtd "$ino"
    # last resort: QEMU and dnsmasq by the pid files of this host's libvirt
    for f in "$d"/run/qemu/*.pid; do
        [[ -e $f ]] || continue
        pidfile_alive "$f" qemu "$ino" && log "$(host_name "$i"): killing leftover QEMU pid $(read_pid "$f") (${f##*/})"
        kill_pidfile "$f" qemu "$ino"
    done
    for f in "$d"/run/network/*.pid; do
        [[ -e $f ]] || continue
        pidfile_alive "$f" dnsmasq "$ino" && log "$(host_name "$i"): killing leftover dnsmasq pid $(read_pid "$f") (${f##*/})"
        kill_pidfile "$f" dnsmasq "$ino"
    done
    kill_pidfile "$d/pids/virtlogd.pid" virtlogd "$ino"
    leftovers=$(pids_in_netns "$ino" | tr '\n' ' ')
    if [[ -n $leftovers ]]; then
        log "warning: processes not started by the lab remain in namespace $ns: $leftovers(not killed)"
    fi
}

start_host() { # i
    local i=$1 d ns name t0 t
    d=$(host_dir "$i")
    ns=$(host_ns "$i")
    name=$(host_name "$i")
    if host_alive "$i"; then
        ensure_host_net "$i"
        log "$name: already running (libvirtd pid $(read_pid "$d/pids/libvirtd.pid"))"
        return 0
    fi
    # whatever is left of an earlier incarnation goes first, and the host
    # gets a fresh network namespace (no stale bridges or firewall rules)
    stop_host_procs "$i"
    if ns_exists "$ns"; then ip netns del "$ns"; fi
    prepare_host "$i"
    find "$d/run" -mindepth 1 -delete
    mkdir -p "$d"/run/{qemu,network}
    rm -f "$d"/pids/*.pid
    ensure_host_net "$i"

    t0=$(date +%s%N)
    ip netns exec "$ns" unshare --mount --uts --propagation private -- \
        sh -c "$INNER_SCRIPT" lab-host "$d" "$name" "$STATE_ROOT/hosts" \
        </dev/null >>"$d/log/daemon-start.log" 2>&1 9>&- ||
        fail_host "$i" "could not start the daemons"

    local deadline=$((SECONDS + WAIT_SECS))
    until host_answers "$i"; do
        if ((SECONDS >= deadline)); then
            fail_host "$i" "libvirtd did not answer within ${WAIT_SECS}s"
        fi
        sleep 0.2
    done
    host_alive "$i" || fail_host "$i" "daemons are not running"
    t=$((($(date +%s%N) - t0) / 1000000))
    log "$name: up in ${t} ms (ns $ns, address $(host_addr "$i"), libvirtd pid $(read_pid "$d/pids/libvirtd.pid"))"
}

fail_host() { # i message
    local d f
    d=$(host_dir "$1")
    log "$(host_name "$1"): $2"
    for f in daemon-start.log libvirtd.log virtlogd.log; do
        if [[ -s $d/log/$f ]]; then
            printf -- '--- %s (tail) ---\n' "$d/log/$f" >&2
            tail -n 20 "$d/log/$f" >&2
        fi
    done
    # leave nothing of the failed host running
    stop_host_procs "$1"
    exit 1
}

# a 'dir' pool named default at /var/lib/libvirt/images (= <host dir>/lib/images)
ensure_pool() { # i
    local uri all active
    uri=$(host_uri "$1")
    all=$(virsh_q "$uri" pool-list --all --name)
    if ! grep -Eq '^[[:space:]]*default[[:space:]]*$' <<<"$all"; then
        virsh_q "$uri" pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
    fi
    virsh_q "$uri" pool-autostart default >/dev/null
    active=$(virsh_q "$uri" pool-list --name)
    if ! grep -Eq '^[[:space:]]*default[[:space:]]*$' <<<"$active"; then
        virsh_q "$uri" pool-start default >/dev/null
    fi
}

# ------------------------------------------------------------ subcommands ---
# libvirtd stop|start N: a daemon restart as a fault for tests.  stop signals only the libvirtd of
# the pid file (TERM, then KILL after 10 s), checked by program name and network namespace like
# every kill here; QEMU, dnsmasq and virtlogd keep running.  start enters the mount, UTS and network
# namespaces of the host's virtlogd (which holds the namespace the host was started in) and starts
# libvirtd there with the same pid file, as 'up' does.
cmd_libvirtd() {
    local action=$1 i=$2 d ns ino vpid deadline
    check_count "$i"
    need_root
    d=$(host_dir "$i")
    ns=$(host_ns "$i")
    ino=$(ns_inode "$ns")
    [[ -n $ino ]] || die "$(host_name "$i") is not up (no namespace $ns)"
    take_lock
    case $action in
    stop)
        pidfile_alive "$d/pids/libvirtd.pid" libvirtd "$ino" || die "libvirtd of $(host_name "$i") is not running"
        kill_pidfile "$d/pids/libvirtd.pid" libvirtd "$ino"
        log "$(host_name "$i"): libvirtd stopped"
        ;;
    start)
        if pidfile_alive "$d/pids/libvirtd.pid" libvirtd "$ino"; then
            log "$(host_name "$i"): libvirtd already running"
            return 0
        fi
        pidfile_alive "$d/pids/virtlogd.pid" virtlogd "$ino" ||
            die "virtlogd of $(host_name "$i") is not running: use '$PROG up'"
        vpid=$(read_pid "$d/pids/virtlogd.pid")
        rm -f "$d/pids/libvirtd.pid"
        nsenter --target "$vpid" --mount --uts --net -- libvirtd --listen -d -p "$d/pids/libvirtd.pid" \
            </dev/null >>"$d/log/daemon-start.log" 2>&1 9>&- || die "$(host_name "$i"): libvirtd did not start"
        deadline=$((SECONDS + WAIT_SECS))
        until host_answers "$i"; do
            ((SECONDS < deadline)) || die "$(host_name "$i"): libvirtd did not answer within ${WAIT_SECS}s"
            sleep 0.2
        done
        log "$(host_name "$i"): libvirtd started (pid $(read_pid "$d/pids/libvirtd.pid"))"
        ;;
    *) usage ;;
    esac
}

# crash N: a hypervisor that fails at once, as a fault for tests.  SIGKILL (no clean-up, no chance
# to save state) to libvirtd first, so that it does not see its guests die, then to every QEMU of the
# host and to virtlogd: each by its pid file, checked by program name and network namespace like every
# kill here (kill_pid_now).  The host's network namespace and its state dir stay; libvirt's pid files
# of the dead QEMUs stay too, so 'down' (and 'up', which clears a dead host first) find them.
kill_pid_now() { # FILE COMM_PREFIX NETNS_INODE: SIGKILL the process of FILE if it is ours; 0 if one was killed
    local pid
    pid=$(read_pid "$1")
    [[ -n $pid ]] && pid_ok "$pid" "$2" "$3" || return 1
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" "$2" "$3" 50 || log "warning: pid $pid ($2) is still alive"
    log "$(host_name "$i"): killed $2 pid $pid (${1##*/})"
}

cmd_crash() {
    local i=$1 d ns ino f
    check_count "$i"
    need_root
    d=$(host_dir "$i")
    ns=$(host_ns "$i")
    ino=$(ns_inode "$ns")
    [[ -n $ino ]] || die "$(host_name "$i") is not up (no namespace $ns)"
    take_lock
    pidfile_alive "$d/pids/libvirtd.pid" libvirtd "$ino" || die "libvirtd of $(host_name "$i") is not running"
    kill_pid_now "$d/pids/libvirtd.pid" libvirtd "$ino" || true
    for f in "$d"/run/qemu/*.pid; do
        [[ -e $f ]] || continue
        kill_pid_now "$f" qemu "$ino" || true
    done
    kill_pid_now "$d/pids/virtlogd.pid" virtlogd "$ino" || true
    host_answers "$i" && die "$(host_name "$i") still answers after the crash"
    log "$(host_name "$i"): crashed (libvirtd, QEMU and virtlogd killed)"
}

lab_running() { # any host of the lab alive
    local d i
    for d in "$STATE_ROOT"/host*; do
        [[ -d $d ]] || continue
        i=${d##*/host}
        [[ $i =~ ^[0-9]+$ ]] || continue
        if host_alive "$i"; then return 0; fi
    done
    return 1
}

cmd_up() {
    local n=${LAB_HOSTS:-1} fresh=0 i j
    while (($#)); do
        case $1 in
        --fresh) fresh=1 ;;
        *) n=$1 ;;
        esac
        shift
    done
    check_count "$n"
    need_root
    # --fresh: a lab that is not running starts without the VMs, volumes and networks an earlier run left
    if ((fresh)) && [[ -e $STATE_ROOT/.virtops-lab ]] && ! lab_running; then
        log "no host of the lab at $STATE_ROOT is running: starting from an empty state dir"
        cmd_down --purge
    fi
    # 'up N' on a running lab of more hosts (a target bringing back a host it crashed) keeps them all:
    # the lab is never shrunk under the targets that follow
    if [[ -r $STATE_ROOT/hosts.count ]] && lab_running; then
        local had
        had=$(<"$STATE_ROOT/hosts.count")
        if [[ $had =~ ^[0-9]+$ ]] && ((had > n)); then n=$had; fi
    fi
    mkdir -p "$STATE_ROOT"
    touch "$STATE_ROOT/.virtops-lab"
    take_lock
    write_hosts_file "$n"
    ensure_switch
    for ((i = 1; i <= n; i++)); do
        start_host "$i"
        ensure_pool "$i"
    done
    printf '%s\n' "$n" >"$STATE_ROOT/hosts.count"
    for ((j = n + 1; j <= MAX_HOSTS; j++)); do
        if host_alive "$j"; then
            log "note: $(host_name "$j") is still running but not part of this $n-host lab ('$PROG down' stops it)"
        fi
    done
}

cmd_down() {
    local purge=0 d i ns
    case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) usage ;;
    esac
    need_root
    if [[ -d $STATE_ROOT ]]; then
        take_lock
        for d in "$STATE_ROOT"/host*; do
            [[ -d $d ]] || continue
            i=${d##*/host}
            [[ $i =~ ^[0-9]+$ ]] || continue
            stop_host_procs "$i"
        done
    fi
    # remove every lab namespace, including ones whose state dir is gone
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        case "$ns" in
        "$NS_PREFIX"[0-9]*)
            [[ ${ns#"$NS_PREFIX"} =~ ^[0-9]+$ ]] || continue
            local left
            left=$(pids_in_netns "$(ns_inode "$ns")" | tr '\n' ' ')
            [[ -z $left ]] || log "warning: processes remain in $ns: $left(not killed)"
            ip netns del "$ns"
            ;;
        esac
    done
    if ns_exists "$SW_NS"; then ip netns del "$SW_NS"; fi
    if ((purge)) && [[ -d $STATE_ROOT ]]; then
        if [[ -e $STATE_ROOT/.virtops-lab ]]; then
            rm -rf "$STATE_ROOT"
        else
            die "$STATE_ROOT has no .virtops-lab marker, not removing it"
        fi
    fi
    return 0
}

cmd_status() {
    local n i d ns ino rc=0 lv vl nsst answer
    n=$(lab_count)
    for ((i = 1; i <= n; i++)); do
        d=$(host_dir "$i")
        ns=$(host_ns "$i")
        ino=$(ns_inode "$ns")
        if [[ -n $ino ]]; then nsst=present; else nsst=missing; fi
        lv="libvirtd=$(read_pid "$d/pids/libvirtd.pid")"
        if pidfile_alive "$d/pids/libvirtd.pid" libvirtd "$ino"; then lv+="(alive)"; else lv+="(dead)"; fi
        vl="virtlogd=$(read_pid "$d/pids/virtlogd.pid")"
        if pidfile_alive "$d/pids/virtlogd.pid" virtlogd "$ino"; then vl+="(alive)"; else vl+="(dead)"; fi
        if host_answers "$i"; then answer=yes; else answer=no; fi
        printf '%s ns=%s(%s) %s %s addr=%s uri=%s answers=%s\n' \
            "$(host_name "$i")" "$ns" "$nsst" "$lv" "$vl" "$(host_addr "$i")" "$(host_uri "$i")" "$answer"
        if [[ $answer != yes ]] || ! host_alive "$i"; then rc=1; fi
    done
    return "$rc"
}

cmd_uris() {
    local n i
    n=$(lab_count)
    for ((i = 1; i <= n; i++)); do host_uri "$i"; echo; done
}

cmd_env() {
    local n i
    n=$(lab_count)
    printf "LAB_HOSTS=%s\n" "$n"
    printf "LAB_STATE_DIR='%s'\n" "$STATE_ROOT"
    for ((i = 1; i <= n; i++)); do
        printf "LAB_URI_%s='%s'\n" "$i" "$(host_uri "$i")"
        printf "LAB_ADDR_%s='%s'\n" "$i" "$(host_addr "$i")"
        printf "LAB_TCP_URI_%s='%s'\n" "$i" "$(host_tcp_uri "$i")"
        printf "LAB_NS_%s='%s'\n" "$i" "$(host_ns "$i")"
    done
}

cmd_inventory() {
    local file=${1:-} n i tmp
    [[ -n $file ]] || usage
    n=$(lab_count)
    if [[ -n ${2:-} ]]; then # only the first N hosts
        check_count "$2"
        (($2 <= n)) || die "the lab has $n hosts, not $2"
        n=$2
    fi
    tmp=$(mktemp "${file}.XXXXXX")
    {
        echo "# Generated by tests/lab/lab.sh; lab state dir $STATE_ROOT"
        echo "all:"
        echo "  children:"
        echo "    hypervisors:"
        echo "      hosts:"
        for ((i = 1; i <= n; i++)); do
            echo "        $(host_name "$i"):"
            echo "          ansible_connection: local"
            echo "          ansible_python_interpreter: \"{{ ansible_playbook_python }}\""
            echo "          libvirt_uri: \"$(host_uri "$i")\""
            echo "          lab_address: \"$(host_addr "$i")\""
            echo "          lab_tcp_uri: \"$(host_tcp_uri "$i")\""
            echo "          lab_state_dir: \"$(host_dir "$i")\""
            echo "          lab_state_root: \"$STATE_ROOT\""
            echo "          lab_ns_prefix: \"$NS_PREFIX\""
            echo "          lab_host_number: $i"
        done
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$file"
}

main() {
    local cmd=${1:-}
    [[ -n $cmd ]] || usage
    shift
    check_state_root
    case "$cmd" in
    up) (($# <= 2)) || usage; cmd_up "$@" ;;
    down) (($# <= 1)) || usage; cmd_down "$@" ;;
    status) (($# == 0)) || usage; cmd_status ;;
    uris) (($# == 0)) || usage; cmd_uris ;;
    env) (($# == 0)) || usage; cmd_env ;;
    inventory) (($# == 1 || $# == 2)) || usage; cmd_inventory "$@" ;;
    libvirtd) (($# == 2)) || usage; cmd_libvirtd "$@" ;;
    crash) (($# == 1)) || usage; cmd_crash "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
    esac
}

main "$@"
