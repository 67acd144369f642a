#!/usr/bin/env bash
# make_hostile.sh DIR SECRET: hostile disk images in DIR, each of which names the host file SECRET
# (or some other file outside any pool) in its own way, plus images that lie about their format.
# Built with the real qemu-img; the file SECRET is never written.
set -euo pipefail
dir=$1
secret=$2
cd "$dir"
q() { qemu-img "$@" >/dev/null; }
# a qcow2 whose backing file is named NAME (as is: json:, nbd:, relative...) with format FMT
overlay() { q create -q -f qcow2 "$1" 1M; q rebase -u -f qcow2 -b "$2" -F "${3:-raw}" "$1"; }

overlay backing-abs.img "$secret"
overlay backing-json.img "json:{\"file\":{\"driver\":\"file\",\"filename\":\"$secret\"}}"
overlay backing-nbd.img "nbd://127.0.0.1:10809/disk"
overlay backing-rel.img "../host/$(basename "$secret")"
overlay backing-nofmt.img "$secret"
# drop the backing format header extension: qemu would probe the backing file's format
python3 - backing-nofmt.img <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    head = bytearray(f.read(65536))
    i = head.find(bytes.fromhex("E2792ACA"))
    head[i:i + 4] = b"\0\0\0\0"
    f.seek(0)
    f.write(head)
PY
# a chain: chain.img -> chain-mid.img (next to it, fine) -> the secret
overlay chain-mid.img "$secret"
q create -q -f qcow2 -b chain-mid.img -F qcow2 chain.img
# a qcow2 whose data lives in another file
q create -q -f qcow2 -o data_file="$dir/datafile.data" datafile.img 1M
q amend -f qcow2 -o data_file="$secret" datafile.img
rm -f datafile.data
# a VMDK descriptor whose extent is the secret
printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 2048 FLAT "%s" 0\n\nddb.virtualHWVersion = "4"\n' \
    "$secret" > extent.vmdk
q create -q -f qed -b "$secret" -F raw qed-backing.img 1M
# format lies: self-contained images declared as something else
q create -q -f qcow2 plain.qcow2 1M
q create -q -f vmdk plain.vmdk 1M
q create -q -f qed plain.qed 1M
head -c 1048576 /dev/zero > plain.raw
# formats that are refused whatever is declared
for _ in $(seq 30); do  # QEMU < 9.2.1 fails its pbkdf benchmark in ~25 % of the runs here (a QEMU bug)
    if q create -q --object secret,id=s0,data=pw -f luks -o key-secret=s0,iter-time=10 luks.img 1M; then break; fi
done
q create -q -f qcow qcow1.img 1M
q create -q -f qcow2 huge.qcow2 17T
