#!/usr/bin/env bash
# install-deps.sh - install the Debian/Ubuntu packages the virtops.libvirt test
# lab needs, and only those that are missing.  Idempotent; quiet on success.
# Must run as root.  Package installation is prevented from starting services
# (libvirtd must never run in the machine's own network namespace): if no
# /usr/sbin/policy-rc.d exists, a temporary one that denies starts is used.
set -euo pipefail

PACKAGES=(
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils dnsmasq-base iptables iproute2 lvm2 ovmf
    debootstrap e2fsprogs xorriso genisoimage zstd pigz jq
    libvirt-dev pkg-config python3-venv python3-dev gcc
    libxml2-utils shellcheck
    swtpm swtpm-tools
)

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$p")
done
((${#missing[@]})) || exit 0

if ((EUID != 0)); then
    echo "install-deps.sh: must run as root to install: ${missing[*]}" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from virtops.libvirt tests/lab/install-deps.sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

log=$(mktemp)
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "install-deps.sh: failed to install: ${missing[*]}" >&2
    exit 1
fi
rm -f "$log"
