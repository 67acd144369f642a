#!/usr/bin/env bash
# guest-boot-check.sh - manual smoke check: boot the lab guest image (guest-image.sh)
# on a lab host under TCG and report how long it takes until the guest agent answers,
# the hostname, the DHCP address (lease and agent) and, with a NoCloud seed, whether
# cloud-init ran.  One guest at a time; everything it defines is removed at the end.
#
# Usage: guest-boot-check.sh [--machine q35|pc] [--seed none|disk|sata|ide|scsi] [--keep]
#   --seed disk   the seed ISO as a virtio disk
#   --seed sata|ide|scsi   the seed ISO as a cdrom on that bus (ide: machine pc only)
# Environment: GUEST_CHECK_URI (default: first URI of 'lab.sh uris', honouring LAB_*),
# GUEST_CHECK_TIMEOUT (s, default 300), GUEST_CHECK_IMAGE (an image directory; default:
# 'guest-image.sh path'), GUEST_CHECK_CMDLINE (default: the manifest's).
# Prints key=value lines; exit 0 only if every check passed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=${0##*/}
MACHINE=q35
SEED=none
KEEP=0
TIMEOUT=${GUEST_CHECK_TIMEOUT:-300}
NAME=virtops-guest-check
NET=vgchk
BRIDGE=vgchkbr0
SUBNET=192.168.151

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

while (($#)); do
    case "$1" in
    --machine) MACHINE=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) die "usage: $PROG [--machine q35|pc] [--seed none|disk|sata|ide|scsi] [--keep]" ;;
    esac
done
[[ $MACHINE == q35 || $MACHINE == pc ]] || die "--machine: q35 or pc"
[[ $SEED =~ ^(none|disk|sata|ide|scsi)$ ]] || die "--seed: none, disk, sata, ide or scsi"
[[ $SEED != ide || $MACHINE == pc ]] || die "an IDE cdrom needs --machine pc"
command -v jq >/dev/null || die "jq is missing (tests/lab/install-deps.sh)"

URI=${GUEST_CHECK_URI:-$("$HERE/lab.sh" uris | head -n 1)}
IMG=${GUEST_CHECK_IMAGE:-$("$HERE/guest-image.sh" path)} || die "no guest image: run tests/lab/guest-image.sh build"
CMDLINE=${GUEST_CHECK_CMDLINE:-$(jq -r .cmdline "$IMG/manifest.json")}
V=(virsh -q -c "$URI")
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/virtops-guest-check.XXXXXX") # seen by the lab hosts too
NET_CREATED=0

cleanup() {
    if ((KEEP)); then
        log "kept: domain $NAME, serial log $WORK/serial.log"
        return
    fi
    "${V[@]}" destroy "$NAME" >/dev/null 2>&1 || true
    "${V[@]}" undefine "$NAME" --nvram >/dev/null 2>&1 || "${V[@]}" undefine "$NAME" >/dev/null 2>&1 || true
    "${V[@]}" vol-delete --pool default "$NAME.qcow2" >/dev/null 2>&1 || true
    "${V[@]}" vol-delete --pool default "$NAME-seed.iso" >/dev/null 2>&1 || true
    if ((NET_CREATED)); then
        "${V[@]}" net-destroy "$NET" >/dev/null 2>&1 || true
        "${V[@]}" net-undefine "$NET" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ms() { echo $(($(date +%s%N) / 1000000)); }
agent() { "${V[@]}" qemu-agent-command --timeout 5 "$NAME" "$1" 2>/dev/null; }

# guest_exec PROG ARG...: run in the guest through the agent, print its stdout
guest_exec() {
    local req pid st i args
    args=$(if (($# > 1)); then printf '%s\n' "${@:2}"; fi | jq -R . | jq -sc .)
    req=$(jq -cn --arg p "$1" --argjson a "$args" '{execute: "guest-exec", arguments: {path: $p, arg: $a, "capture-output": true}}')
    pid=$(agent "$req" | jq -r '.return.pid') || return 1
    for ((i = 0; i < TIMEOUT; i++)); do
        st=$(agent "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 1
        if [[ $(jq -r '.return.exited' <<<"$st") == true ]]; then
            jq -r '.return["out-data"] // ""' <<<"$st" | base64 -d
            return "$(jq -r '.return.exitcode // 1' <<<"$st")"
        fi
        sleep 1
    done
    return 1
}

if ! "${V[@]}" net-info "$NET" >/dev/null 2>&1; then
    "${V[@]}" net-define /dev/stdin >/dev/null <<EOF
<network>
  <name>$NET</name>
  <forward mode='nat'/>
  <bridge name='$BRIDGE'/>
  <ip address='$SUBNET.1' netmask='255.255.255.0'>
    <dhcp><range start='$SUBNET.100' end='$SUBNET.199'/></dhcp>
  </ip>
</network>
EOF
    NET_CREATED=1
fi
[[ $("${V[@]}" net-info "$NET") =~ Active:[[:space:]]+yes ]] || "${V[@]}" net-start "$NET" >/dev/null

"${V[@]}" vol-create default /dev/stdin >/dev/null <<EOF
<volume>
  <name>$NAME.qcow2</name>
  <capacity unit='G'>2</capacity>
  <target><format type='qcow2'/></target>
  <backingStore><path>$IMG/root.qcow2</path><format type='qcow2'/></backingStore>
</volume>
EOF
OVERLAY=$("${V[@]}" vol-path --pool default "$NAME.qcow2")

SEED_XML=
if [[ $SEED != none ]]; then
    mkdir -p "$WORK/seed"
    printf 'instance-id: %s-%s\nlocal-hostname: seeded\n' "$NAME" "$(date +%s)" >"$WORK/seed/meta-data"
    # a network-config that would cut the guest off if cloud-init applied it:
    # the image leaves the network to ifupdown (DHCP on eth0)
    cat >"$WORK/seed/network-config" <<'EOF'
version: 2
ethernets:
  eth0:
    addresses: [ 10.99.99.99/24 ]
EOF
    cat >"$WORK/seed/user-data" <<'EOF'
#cloud-config
hostname: seeded
runcmd:
  - [ sh, -c, 'echo cloud-init-ran > /var/tmp/virtops-seeded' ]
EOF
    xorriso -as mkisofs -quiet -V cidata -J -r -o "$WORK/seed.iso" "$WORK/seed" 2>/dev/null
    "${V[@]}" vol-create-as default "$NAME-seed.iso" "$(stat -c %s "$WORK/seed.iso")" --format raw >/dev/null
    "${V[@]}" vol-upload --pool default "$NAME-seed.iso" "$WORK/seed.iso"
    ISO=$("${V[@]}" vol-path --pool default "$NAME-seed.iso")
    case $SEED in
    disk) SEED_XML="<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$ISO'/><target dev='vdb' bus='virtio'/><readonly/></disk>" ;;
    sata) SEED_XML="<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='$ISO'/><target dev='sda' bus='sata'/><readonly/></disk>" ;;
    ide) SEED_XML="<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='$ISO'/><target dev='hdc' bus='ide'/><readonly/></disk>" ;;
    scsi) SEED_XML="<controller type='scsi' model='virtio-scsi'/><disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='$ISO'/><target dev='sda' bus='scsi'/><readonly/></disk>" ;;
    esac
fi

cat >"$WORK/domain.xml" <<EOF
<domain type='qemu'>
  <name>$NAME</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='$MACHINE'>hvm</type>
    <kernel>$IMG/vmlinuz</kernel>
    <initrd>$IMG/initrd.img</initrd>
    <cmdline>$CMDLINE</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$OVERLAY'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    $SEED_XML
    <interface type='network'>
      <source network='$NET'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='$WORK/serial.log'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$WORK/serial.log'/>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
if command -v virt-xml-validate >/dev/null; then virt-xml-validate "$WORK/domain.xml" domain >/dev/null 2>&1 || die "domain XML does not validate"; fi
"${V[@]}" define "$WORK/domain.xml" >/dev/null
log "image $IMG, machine $MACHINE, seed $SEED, cmdline '$CMDLINE'"

fail=0
t0=$(ms)
"${V[@]}" start "$NAME" >/dev/null
until agent '{"execute":"guest-ping"}' >/dev/null; do
    if (($(ms) - t0 > TIMEOUT * 1000)); then
        log "FAIL: no guest agent after ${TIMEOUT}s; serial log tail:"
        tail -n 30 "$WORK/serial.log" >&2 || true
        exit 1
    fi
    sleep 1
done
echo "agent_ms=$(($(ms) - t0))"
echo "hostname=$(agent '{"execute":"guest-get-host-name"}' | jq -r '.return["host-name"]')"

addr() { "${V[@]}" domifaddr "$NAME" --source "$1" 2>/dev/null | awk -v p="$SUBNET." 'index($4, p) == 1 {sub("/.*", "", $4); print $4; exit}'; }
lease='' ag=''
for ((i = 0; i < 120; i++)); do
    lease=$(addr lease)
    ag=$(addr agent)
    [[ -n $lease && -n $ag ]] && break
    sleep 1
done
echo "dhcp_ms=$(($(ms) - t0)) lease_addr=${lease:-none} agent_addr=${ag:-none}"
[[ -n $lease && $lease == "$ag" ]] || fail=1

# cloud-init: wait until it is done (under TCG this takes a while)
ci=$(guest_exec /usr/bin/cloud-init status --wait 2>/dev/null | sed -n 's/^.*status: //p' || true)
echo "cloud_init_done_ms=$(($(ms) - t0)) cloud_init=${ci:-unknown}"
ds=$(guest_exec /bin/cat /run/cloud-init/result.json 2>/dev/null | jq -r '.v1.datasource // "none"' || true)
echo "cloud_init_datasource=${ds:-unknown}"
if [[ $SEED != none ]]; then
    host=$(agent '{"execute":"guest-get-host-name"}' | jq -r '.return["host-name"]')
    ran=$(guest_exec /bin/cat /var/tmp/virtops-seeded 2>/dev/null || true)
    echo "seeded_hostname=$host runcmd_file=${ran:-missing}"
    [[ $host == seeded && $ran == cloud-init-ran ]] || fail=1
fi
# The whole boot: systemd reached its default target
up=$(guest_exec /bin/systemctl is-system-running --wait 2>/dev/null | tr -d '\n' || true)
echo "system_running_ms=$(($(ms) - t0)) state=${up:-unknown}"
guest_exec /usr/bin/systemd-analyze 2>/dev/null | head -n 1 || true
if ((!KEEP)); then
    # a clean shutdown by the ACPI power button (systemd-logind handles it)
    t1=$(ms)
    "${V[@]}" shutdown "$NAME" --mode acpi >/dev/null
    until [[ $("${V[@]}" domstate "$NAME") == "shut off" ]]; do
        if (($(ms) - t1 > 120000)); then
            echo "acpi_shutdown=timeout"
            fail=1
            break
        fi
        sleep 1
    done
    ((fail)) || echo "acpi_shutdown_ms=$(($(ms) - t1))"
fi
if ((fail)); then log "FAIL"; exit 1; fi
log "OK"
