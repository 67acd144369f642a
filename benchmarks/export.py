# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""export: virtops.libvirt.export of a BENCH_SIZE_GIB (8) GiB qcow2 disk holding BENCH_DATA_MIB (1024) MiB of data.

  floors:  (a1) qemu-img convert to a streamOptimized vmdk      (a2) qemu-img convert to a compressed qcow2 (-c)
           (a3) qemu-img convert to a qcow2                      (a4) (a3), then tar of it through zstd -T0
           (a5) (a3), then tar of it through pigz
  naive:   (n)  tar czf of the raw disk (GNU tar and gzip, what a naive export does)
  export:  (b1) format vmdk of the volume (floor a1)              (b2) format qcow2, compressed, of the volume (a2)
           (b3) format ova of a stopped VM with that disk (a1)   (b4) format tar.zst of that VM (a3)
           (b5) format tar.gz of that VM (a3)

Every output is checked (qemu-img compare with the source, after unpacking OVA and archives; the naive archive
must hold the raw disk), and every export must report a change, so a variant that does nothing fails.
python -m benchmarks export (benchmarks/README.md).
"""

import json
import os
import re
import shutil
import subprocess
import sys

from . import _ansible, _session
from ._report import Report, Runs, table
from ._util import BenchError, loadavg, log, need_tools, now, render_xml, run, virsh, write
from ._virt import DirPool

VM = "vbench-export"
SOURCE = "bench-src.qcow2"
ORDER = ("a1", "b1", "b3", "a2", "b2", "a3", "a4", "b4", "a5", "b5", "n")
FLOOR = dict(a1="a1", a2="a2", a3="a3", a4="a3", a5="a3", n="n", b1="a1", b2="a2", b3="a1", b4="a3", b5="a3")
WHAT = dict(
    a1="floor: `qemu-img convert -O vmdk -o subformat=streamOptimized`",
    b1="export `format: vmdk` (volume)",
    b3="export `format: ova` (stopped VM)",
    a2="floor: `qemu-img convert -c -O qcow2`",
    b2="export `format: qcow2, compressed: true` (volume)",
    a3="floor: `qemu-img convert -O qcow2`",
    a4="(a3), then `tar -I 'zstd -T0 -3' -cf` of it",
    b4="export `format: tar.zst` (stopped VM)",
    a5="(a3), then `tar -I pigz -cf` of it",
    b5="export `format: tar.gz` (stopped VM)",
    n="naive: `tar czf` of the raw disk (GNU tar, gzip)",
)


def sparse_source(raw, src, size_gib, data_mib, chunks):
    """The data: real files (the start of a tar stream of /usr: programs, libraries, text), in `chunks` pieces
    spread evenly over a `size_gib` GiB raw file, converted to the qcow2 `src`, so that the image has as many
    allocated extents with holes between. The bytes allocated in `src` (BenchError when far from data_mib)."""
    size, piece = size_gib << 30, (data_mib << 20) // chunks
    stride = size // chunks
    tar = subprocess.Popen(["tar", "-cf", "-", "-C", "/", "usr"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        with open(raw, "wb") as out:
            out.truncate(size)
            for i in range(chunks):
                buf = tar.stdout.read(piece)
                if len(buf) != piece:
                    raise BenchError("the tar stream of /usr ended early")
                out.seek(i * stride)
                out.write(buf)
    finally:
        tar.stdout.close()
        tar.kill()
        tar.wait()
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, src])
    extents = json.loads(run(["qemu-img", "map", "-f", "qcow2", "--output=json", src]))
    allocated = sum(e["length"] for e in extents if e.get("data"))
    # a little less than written: the zero blocks of tar's padding are not allocated
    if allocated < (data_mib << 20) * 9 // 10:
        raise BenchError("the source holds %d bytes of data, expected ~%d MiB" % (allocated, data_mib))
    return allocated


class Scenario(_session.Scenario):
    name = "export"
    title = "exporting a sparse qcow2 disk"
    files = ("playbooks/virtops/export.yml", "templates/export_domain.xml")

    def read_knobs(self):
        self.size_gib = self.knobs.int("BENCH_SIZE_GIB", 8)
        self.data_mib = self.knobs.int("BENCH_DATA_MIB", 1024)
        self.chunks = self.knobs.int("BENCH_CHUNKS", 16)
        self.reps = self.knobs.int("BENCH_REPS", 1)
        self.pool_name = self.knobs.name("BENCH_POOL", "vbench-export")
        self.pool_dir = self.knobs.path("BENCH_POOL_DIR", "/var/tmp/virtops-bench-export-pool")
        self.out = self.knobs.path("BENCH_OUT_DIR", "/var/tmp/virtops-bench-export-out")
        if self.data_mib % self.chunks:
            raise BenchError("BENCH_DATA_MIB must be a multiple of BENCH_CHUNKS (%d)" % self.chunks)
        if self.data_mib >= self.size_gib * 1024:
            raise BenchError("BENCH_DATA_MIB must be less than the disk size")

    def preflight(self):
        super().preflight()
        need_tools("zstd", "pigz", "tar", "gzip")

    def run(self, session, stack):
        self.session = session
        session.build.require("plugins/modules/export.py")
        self.uri = session.lab.uri(1)
        self.work = session.scratch(self.name)
        if os.path.exists(self.out):
            raise BenchError("%s already exists; remove it or set BENCH_OUT_DIR" % self.out)
        if virsh(self.uri, "dominfo", VM, check=False) is not None:
            raise BenchError("domain %r already exists on %s" % (VM, self.uri))
        self.pool = DirPool(self.uri, self.pool_name, self.pool_dir, (SOURCE,)).create(stack)
        os.mkdir(self.out, 0o755)
        stack.callback(shutil.rmtree, self.out, True)
        self.src = self.pool.file(SOURCE)
        self.raw = os.path.join(self.work, "source.raw")
        stack.callback(lambda: os.path.exists(self.raw) and os.unlink(self.raw))
        self.make_source()
        stack.callback(virsh, self.uri, "undefine", VM, check=False)
        virsh(self.uri, "define", write(os.path.join(self.work, "domain.xml"),
                                        render_xml("export_domain.xml", name=VM, disk=self.src)))
        log("warming the page cache with the source (every variant then reads it from memory)")
        for path in (self.src, self.raw):
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass
        self.secs, self.module_secs, self.sizes, self.load = Runs(), Runs(), {}, {}
        for rep in range(1, self.reps + 1):
            log("repetition %d/%d" % (rep, self.reps))
            self.repetition(rep)
        return self.report()

    def make_source(self):
        log("making the source: %d GiB, %d MiB of data from /usr in %d pieces"
            % (self.size_gib, self.data_mib, self.chunks))
        self.allocated = sparse_source(self.raw, self.src, self.size_gib, self.data_mib, self.chunks)
        self.pool.refresh()

    # --------------------------------------------------------------------------------------------- variants
    def repetition(self, rep):
        """Each export right after its floor, so that both see about the same load; the long naive run last."""
        out, src = self.out, self.src
        self.command("a1", "a1.vmdk", ["qemu-img", "convert", "-f", "qcow2", "-O", "vmdk", "-o",
                                       "subformat=streamOptimized", src, os.path.join(out, "a1.vmdk")])
        self.same_content("a1", "a1.vmdk")
        self.export("b1", rep, "vmdk", False, "b1.vmdk", "volume")
        self.same_content("b1", "b1.vmdk")
        self.export("b3", rep, "ova", False, "b3.ova", "vm")
        members = run(["tar", "-tf", os.path.join(out, "b3.ova")]).split()
        if members != [VM + ".ovf", VM + ".mf", VM + "-disk1.vmdk"]:
            raise BenchError("b3: unexpected OVA members %s" % members)
        self.unpack("b3.ova", [])
        self.same_content("b3", VM + "-disk1.vmdk")
        self.command("a2", "a2.qcow2", ["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", "-c", src,
                                        os.path.join(out, "a2.qcow2")])
        self.same_content("a2", "a2.qcow2")
        self.export("b2", rep, "qcow2", True, "b2.qcow2", "volume")
        self.same_content("b2", "b2.qcow2")
        self.command("a3", "a3.qcow2", ["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", src,
                                        os.path.join(out, "a3.qcow2")])
        self.same_content("a3", "a3.qcow2")
        for floor, export, compressor, fmt in (("a4", "b4", "zstd -T0 -3", "tar.zst"), ("a5", "b5", "pigz", "tar.gz")):
            self.command(floor, "%s.%s" % (floor, fmt), self.convert_and_pack(compressor, "%s.%s" % (floor, fmt)))
            shutil.rmtree(os.path.join(out, "disks"))
            self.unpack("%s.%s" % (floor, fmt), ["-I", compressor.split()[0]])
            self.same_content(floor, "disks/vda.qcow2")
            self.export(export, rep, fmt, False, "%s.%s" % (export, fmt), "vm")
            self.unpack("%s.%s" % (export, fmt), ["-I", compressor.split()[0]])
            self.same_content(export, "disks/vda.qcow2")
        self.command("n", "n.tar.gz", ["tar", "-czf", os.path.join(out, "n.tar.gz"), "-C", self.work, "source.raw"])
        listing = run(["tar", "-tvzf", os.path.join(out, "n.tar.gz")]).split()
        if len(listing) < 6 or listing[2] != str(self.size_gib << 30) or listing[5] != "source.raw":
            raise BenchError("n: the tar.gz does not hold the raw disk: %s" % " ".join(listing))
        self.clean_out()

    def convert_and_pack(self, compressor, archive):
        def step():
            os.mkdir(os.path.join(self.out, "disks"))
            disk = os.path.join(self.out, "disks", "vda.qcow2")
            run(["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", self.src, disk])
            run(["tar", "-C", self.out, "-I", compressor, "-cf", os.path.join(self.out, archive), "disks/vda.qcow2"])
        return step

    def command(self, key, output, argv_or_step):
        self.clean_out()
        log("(%s) %s" % (key, WHAT[key]))
        load0 = loadavg().split()[0]
        t0 = now()
        if callable(argv_or_step):
            argv_or_step()
        else:
            run(argv_or_step)
        self.secs.add(key, now() - t0)
        self.load[key] = "%s-%s" % (load0, loadavg().split()[0])
        self.sizes[key] = os.path.getsize(os.path.join(self.out, output))

    def export(self, key, rep, fmt, compressed, dest, kind):
        self.clean_out()
        log("(%s) %s" % (key, WHAT[key]))
        result_file = os.path.join(self.work, "%s-%d.json" % (key, rep))
        extra = dict(bench_format=fmt, bench_compressed=compressed, bench_dest=os.path.join(self.out, dest),
                     bench_result=result_file, bench_vm="", bench_volume=SOURCE, bench_pool=self.pool_name)
        if kind == "vm":
            extra.update(bench_vm=VM, bench_volume="", bench_pool="")
        load0 = loadavg().split()[0]
        result = _ansible.playbook("%s-%d" % (key, rep), self.session.build.venv, "virtops/export.yml",
                                   self.session.inventory, self.work, extra_vars=extra,
                                   collections=self.session.build.installed)
        self.load[key] = "%s-%s" % (load0, loadavg().split()[0])
        with open(result_file) as f:
            res = json.load(f)
        if res.get("changed") is not True:
            raise BenchError("%s: the export did not report a change (log %s)" % (key, result.log))
        self.secs.add(key, result.seconds)
        self.module_secs.add(key, float(res["duration"]))
        self.sizes[key] = int(res["total_size"])

    def unpack(self, archive, options):
        run(["tar"] + options + ["-xf", os.path.join(self.out, archive), "-C", self.out])

    def same_content(self, key, image):
        proc = subprocess.run(["qemu-img", "compare", "-q", "-f", "qcow2", self.src, os.path.join(self.out, image)],
                              check=False)
        if proc.returncode != 0:
            raise BenchError("%s: %s differs from the source (qemu-img compare: exit %d)" % (key, image,
                                                                                             proc.returncode))

    def clean_out(self):
        for f in os.listdir(self.out):
            path = os.path.join(self.out, f)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    # ----------------------------------------------------------------------------------------------- report
    def report(self):
        report = Report(self.name, "a %d GiB qcow2 holding %d MiB of data" % (self.size_gib, self.data_mib))
        zstd = re.search(r"v[0-9][0-9.]*", run(["zstd", "--version"]))
        tools = [run(["qemu-img", "--version"]).splitlines()[0], "zstd %s" % (zstd.group(0) if zstd else "?"),
                 run(["gzip", "--version"]).splitlines()[0], run(["tar", "--version"]).splitlines()[0],
                 run(["pigz", "--version"]).strip()]
        report.fact("; ".join(tools))
        report.fact("source: %d bytes allocated (%.0f MB) in %d extents; page cache warm; repetitions: %d (median "
                    "shown)" % (self.allocated, self.allocated / 1e6, self.chunks, self.reps))

        def used(key):
            """The seconds the rates and ratios use: the module's own duration for exports."""
            return self.module_secs if key in self.module_secs else self.secs

        rows = []
        for key in ORDER:
            floor, seconds = FLOOR[key], used(key).median(key)
            rows.append(["(%s)" % key, WHAT[key], "%.1f" % self.secs.median(key),
                         "%.1f" % self.module_secs.median(key) if key in self.module_secs else "-",
                         "%.0f" % (self.allocated / 1e6 / seconds),
                         "-" if floor == key else "%.2fx of (%s)" % (seconds / used(floor).median(floor), floor),
                         "%.3fx" % (seconds / used("n").median("n")), "%.0f" % (self.sizes[key] / 1e6),
                         self.load[key], used(key).listed(key, "%.2f")])
        report.section(table(["variant", "what", "seconds", "module seconds", "MB/s of allocated data",
                              "time ratio to its floor", "time ratio to (n)", "output MB", "load avg before-after",
                              "all runs (s)"], rows, right=(2, 3, 4, 6, 7)))
        report.section("MB/s and the ratios use the module's own `duration` for (b1)-(b5) (\"module seconds\": from "
                       "reading the source to the last rename, without Ansible's start-up); \"seconds\" is the whole "
                       "ansible-playbook run. MB/s: allocated data (decimal MB) over the time, for every variant.")
        report.data = dict(allocated=self.allocated, seconds=self.secs.values, module_seconds=self.module_secs.values,
                           sizes=self.sizes, load=self.load)
        return report


if __name__ == "__main__":
    sys.exit(_session.main([Scenario.name]))
