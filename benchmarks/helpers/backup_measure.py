# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stop-gap measurement of issue 17's backup benchmark (not yet a scenario of this package).

    PYTHONPATH=<collection stage dir> python benchmarks/helpers/backup_measure.py 'qemu:///system?socket=...'

A running domain without OS (BIOS only, so nothing in it writes) on an 8 GiB qcow2 disk holding 1 GiB of random
data; 64 MiB changed between points through QEMU's HMP ``qemu-io`` (so the dirty bitmap sees the writes).
Measures: ``qemu-img convert`` of the disk (the floor), a bare push backup job by ``virsh backup-begin``, the
module's full point, its incremental point, 7 incrementals against 7 fulls (repository sizes), and zstd.
Prints one JSON document.  Work directory BACKUP_MEASURE_DIR (default /var/tmp/virtops-backup-measure).
"""

from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import subprocess
import sys
import time

import libvirt

from ansible_collections.virtops.libvirt.plugins.module_utils._backup.backup import BackupResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context

MIB = 1024 * 1024
VM = "vbench-backup"
DOMAIN = ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' "
          "machine='pc'>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
          "<source file='%s'/><target dev='vda' bus='virtio'/></disk></devices></domain>")


def sh(*argv):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode()


def run_argv(argv, **_kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def du(path):
    return int(sh("du", "-sb", path).split()[0])


class Measure:
    def __init__(self, uri, work):
        self.uri = uri
        self.work = work
        self.conn = Connection(uri).open()

    def backup(self, repo, point, mode, compression="none"):
        params = dict(uri=self.uri, vm=VM, repository=repo, point=point, mode=mode, full_every=None,
                      full_max_age_days=None, compression=compression, quiesce=False, retention=None, state="present",
                      timeout=None, progress_file=None)
        start = time.monotonic()
        result = reconcile(BackupResource(Context(conn=self.conn, params=params, run_command=run_argv)))
        if not result["changed"] or result["point"]["mode"] != mode:
            raise RuntimeError("point %s is not a %s point: %r" % (point, mode, result["point"]))
        return time.monotonic() - start

    def change(self, index):
        offset = (1024 + 64 * index) * MIB  # past the data written at first, a new place each time
        out = sh("virsh", "-c", self.uri, "qemu-monitor-command", VM, "--hmp",
                 'qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -P 0x%02x %d 64M"'
                 % (0x40 + index, offset))
        if out.strip():
            raise RuntimeError("qemu-io in the VM said: %s" % out)

    def bare_job(self, res):
        xml = os.path.join(self.work, "b.xml")
        with open(xml, "w") as handle:
            handle.write("<domainbackup><disks><disk name='vda' type='file'><target file='%s/job.qcow2'/>"
                         "<driver type='qcow2'/></disk></disks></domainbackup>" % self.work)
        start = time.monotonic()
        sh("virsh", "-c", self.uri, "backup-begin", VM, "--backupxml", xml)
        while "None" not in sh("virsh", "-c", self.uri, "domjobinfo", VM):
            time.sleep(0.1)
        res["virsh_backup_job"] = time.monotonic() - start
        start = time.monotonic()
        sh("sha256sum", os.path.join(self.work, "job.qcow2"))
        res["sha256sum_of_a_full_point"] = time.monotonic() - start
        os.unlink(os.path.join(self.work, "job.qcow2"))

    def run(self):
        disk = os.path.join(self.work, "disk.qcow2")
        sh("qemu-img", "create", "-q", "-f", "qcow2", disk, "8G")
        noise = os.path.join(self.work, "noise")
        with open(noise, "wb") as handle:
            handle.write(os.urandom(64 * MIB))
        for index in range(16):  # 1 GiB: 16 x 64 MiB of random data spread over the disk
            sh("qemu-io", "-f", "qcow2", "-c", "write -s %s %d 64M" % (noise, index * 512 * MIB), disk)
        os.chmod(disk, 0o666)
        dom = self.conn.defineXML(DOMAIN % (VM, disk))
        dom.create()
        res = {}
        try:
            start = time.monotonic()
            sh("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", disk, os.path.join(self.work, "floor.qcow2"))
            res["qemu_img_convert"] = time.monotonic() - start
            self.bare_job(res)
            inc = os.path.join(self.work, "repo-inc")
            res["full"] = self.backup(inc, "p0", "full")
            self.change(0)
            res["incremental_64MiB"] = self.backup(inc, "p1", "incremental")
            for index in range(2, 8):
                self.change(index - 1)
                self.backup(inc, "p%d" % index, "incremental")
            fulls = [self.backup(os.path.join(self.work, "repo-full"), "f%d" % i, "full") for i in range(7)]
            res["full_median_of_7"] = sorted(fulls)[3]
            start = time.monotonic()
            sh("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", "-c", "-o", "compression_type=zstd", disk,
               os.path.join(self.work, "floorz.qcow2"))
            res["qemu_img_convert_zstd"] = time.monotonic() - start
            res["full_zstd"] = self.backup(os.path.join(self.work, "repo-z"), "z0", "full", "zstd")
            res["repository_1_full_7_incrementals_bytes"] = du(inc)
            res["repository_7_fulls_bytes"] = du(os.path.join(self.work, "repo-full"))
        finally:
            dom.destroy()
            for checkpoint in dom.listAllCheckpoints(0):
                checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
            dom.undefine()
        res["full_over_incremental"] = res["full"] / res["incremental_64MiB"]
        res["full_over_convert"] = res["full"] / res["qemu_img_convert"]
        res["load_average"] = os.getloadavg()
        return res


def main():
    work = os.environ.get("BACKUP_MEASURE_DIR", "/var/tmp/virtops-backup-measure")
    if os.path.exists(work):
        raise SystemExit("%s exists; remove it or set BACKUP_MEASURE_DIR" % work)
    os.makedirs(work)
    os.chmod(work, 0o755)
    try:
        print(json.dumps(Measure(sys.argv[1], work).run(), indent=1, sort_keys=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
