#!/usr/bin/env bash
# check_export.sh FORMAT DIR VM SOURCE_VDA SOURCE_VDB
# Checks one export of the test VM in DIR with tools we did not write, and prints what it found as JSON:
#   sha256sum -c of every checksum file; for an OVA or an archive, its members in order (tar -t) and
#   their extraction; qemu-img compare of each exported disk with its source (exit 1 on a difference);
#   qemu-img info of each exported disk.
set -euo pipefail
fmt=$1 dir=$2 vm=$3 src_vda=$4 src_vdb=$5
cd "$dir"
for sum in *.sha256; do
    sha256sum --quiet -c "$sum" >&2
done
members=()
case $fmt in
ova) file=$vm.ova; disks=("$vm-disk1.vmdk" "$vm-disk2.vmdk") ;;
tar | tar.gz | tar.zst) file=$vm.$fmt; disks=(disks/vda.qcow2 disks/vdb.qcow2) ;;
*) file=""; disks=("$vm-vda.$fmt" "$vm-vdb.$fmt") ;;
esac
if [[ -n $file ]]; then
    mapfile -t members < <(tar -tf "$file")
    tar -xf "$file"
fi
qemu-img compare "$src_vda" "${disks[0]}" >&2
qemu-img compare "$src_vdb" "${disks[1]}" >&2
for disk in "${disks[@]}"; do
    qemu-img info --output=json "$disk"
done | jq -s --args '{members: $ARGS.positional, disks: [.[] | {format, "actual-size": ."actual-size",
    backing: ."backing-filename", "create-type": ."format-specific".data."create-type"}]}' "${members[@]}"
