# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""qemu-img, driven with argv lists and JSON output; failures become CommandError.

``run`` is any callable ``run(argv) -> (rc, stdout, stderr)``; in a module that is
``module.run_command`` (through ``Context.run_command``).  Only :meth:`QemuImg.convert` with a
progress callback starts the process itself, because it must read qemu-img's progress while it runs.

``info(..., limits=True)`` is for images from elsewhere (see ``_trust``): qemu-img then runs under
``prlimit`` (when the node has it) with :data:`INFO_LIMITS`, so that a crafted header cannot make it
use unbounded memory or CPU time (the limits OpenStack uses for the same purpose).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.binaries import find_binary
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    CommandError,
    InvalidInputError,
    MissingDependencyError,
)

FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc", "qed")

#: address space and CPU seconds for ``qemu-img info`` of an untrusted image
INFO_LIMITS = dict(address_space=1024 ** 3, cpu_seconds=30)

_PROGRESS_RE = re.compile(r"\((\d+(?:\.\d+)?)/100%\)")


def _default_run(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def find_qemu_img(paths=None):
    found = find_binary("qemu-img", extra_dirs=("/usr/bin", "/usr/local/bin"),
                        path=os.pathsep.join(paths) if paths else None)
    if found is None:
        raise MissingDependencyError(
            "qemu-img was not found on the managed node: install 'qemu-utils' (Debian/Ubuntu) or 'qemu-img' (RHEL/Fedora)"
        )
    return found


def find_prlimit():
    """Path of util-linux's ``prlimit``, or None."""
    return find_binary("prlimit", extra_dirs=("/usr/bin", "/bin"))


class QemuImg:
    def __init__(self, run=None, binary=None, prlimit=None):
        self._run = run or _default_run
        self.binary = binary or find_qemu_img()
        self._prlimit = prlimit

    @classmethod
    def of(cls, ctx):
        """The qemu-img of a module run: its commands go through ``ctx.run_command``."""
        return cls(run=ctx.run_command)

    # --- plumbing -------------------------------------------------------------------------------

    def _limited(self):
        """``prlimit ... --`` for untrusted input, or [] when the node has no prlimit."""
        if self._prlimit is None:
            self._prlimit = find_prlimit() or ""
        if not self._prlimit:
            return []
        return [self._prlimit, "--as=%d" % INFO_LIMITS["address_space"], "--cpu=%d" % INFO_LIMITS["cpu_seconds"], "--"]

    def _call(self, args, what, ok_codes=(0,), limits=False):
        argv = (self._limited() if limits else []) + [self.binary] + [str(a) for a in args]
        rc, out, err = self._run(argv)
        if rc not in ok_codes:
            raise CommandError(
                "qemu-img %s failed (rc=%s): %s" % (what, rc, " ".join((err or out or "").split()) or "no output"),
                cmd=argv,
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return rc, out, err

    def _json(self, args, what, ok_codes=(0,), limits=False):
        rc, out, err = self._call(list(args) + ["--output=json"], what, ok_codes, limits)
        try:
            return rc, json.loads(out)
        except ValueError as exc:
            raise CommandError(
                "qemu-img %s printed output that is not JSON: %s" % (what, exc),
                cmd=[self.binary] + [str(a) for a in args],
                rc=rc,
                stdout=out,
                stderr=err,
            )

    @staticmethod
    def _check_format(fmt, what="format"):
        if fmt is not None and fmt not in FORMATS:
            raise InvalidInputError("%s must be one of %s, not %r" % (what, ", ".join(FORMATS), fmt))

    @staticmethod
    def _options(options):
        if not options:
            return []
        parts = []
        for key in sorted(options):
            value = options[key]
            if value is None:
                continue
            if isinstance(value, bool):
                value = "on" if value else "off"
            text = "%s=%s" % (key, value)
            if "," in str(key) or "," in str(value):
                # qemu-img doubles commas to escape them inside an option list
                text = "%s=%s" % (key, str(value).replace(",", ",,"))
            parts.append(text)
        return ["-o", ",".join(parts)] if parts else []

    # --- queries --------------------------------------------------------------------------------

    def version(self):
        _rc, out, _err = self._call(["--version"], "--version")
        match = re.search(r"version\s+([0-9][0-9.]*)", out)
        return match.group(1) if match else out.strip().splitlines()[0]

    def info(self, path, backing_chain=False, fmt=None, force_share=True, limits=False):
        """``qemu-img info --output=json``; with ``backing_chain`` a list, one dict per image.

        ``limits``: the image comes from elsewhere: run under :data:`INFO_LIMITS` (see the module doc).
        """
        args = ["info"]
        if force_share:
            args.append("-U")  # do not take locks: works on images of running VMs
        if fmt:
            args += ["-f", fmt]
        if backing_chain:
            args.append("--backing-chain")
        args.append(path)
        _rc, data = self._json(args, "info", limits=limits)
        return data

    def check(self, path, fmt=None):
        """``qemu-img check``: returns the JSON report; rc 0 clean, 1/2/3 are reported, not raised."""
        args = ["check"]
        if fmt:
            args += ["-f", fmt]
        args.append(path)
        rc, data = self._json(args, "check", ok_codes=(0, 2, 3))
        data["rc"] = rc
        data["clean"] = rc == 0 and not data.get("corruptions") and not data.get("leaks")
        return data

    def measure(self, path, out_fmt, src_fmt=None):
        """Bytes an image would need when converted to ``out_fmt`` (``required``, ``fully-allocated``)."""
        self._check_format(out_fmt, "output format")
        args = ["measure", "-O", out_fmt]
        if src_fmt:
            args += ["-f", src_fmt]
        args.append(path)
        _rc, data = self._json(args, "measure")
        return data

    def map(self, path, fmt=None, force_share=True):
        """``qemu-img map --output=json``: the extents of the image as seen by the guest, each a dict
        with ``start``, ``length``, ``depth`` (0: in ``path`` itself, 1: in its backing file...), ``data``, ``zero``."""
        args = ["map"]
        if force_share:
            args.append("-U")
        if fmt:
            args += ["-f", fmt]
        args.append(path)
        _rc, entries = self._json(args, "map")
        return entries

    def data_bytes(self, path, fmt=None, top_only=False):
        """Bytes of guest data that reading ``path`` costs: the allocated extents of its whole chain, or with
        ``top_only`` those allocated in ``path`` itself (what a guest wrote into an overlay)."""
        return sum(int(e.get("length", 0)) for e in self.map(path, fmt)
                   if e.get("data") and (not top_only or e.get("depth", 0) == 0))

    def compare(self, first, second, strict=False):
        """True when the two images have the same guest-visible content."""
        args = ["compare", "-U"]
        if strict:
            args.append("-s")
        rc, _out, _err = self._call(args + [first, second], "compare", ok_codes=(0, 1))
        return rc == 0

    # --- changes --------------------------------------------------------------------------------

    def create(self, path, fmt, size=None, backing_file=None, backing_fmt=None, options=None):
        self._check_format(fmt)
        if size is None and backing_file is None:
            raise InvalidInputError("qemu-img create needs a size or a backing file")
        args = ["create", "-q", "-f", fmt]
        if backing_file:
            if not backing_fmt:
                raise InvalidInputError("a backing file needs its format (backing_fmt)")
            args += ["-b", backing_file, "-F", backing_fmt]
        args += self._options(options)
        args.append(path)
        if size is not None:
            args.append(str(int(size)))
        self._call(args, "create")

    def commit(self, path, fmt="qcow2"):
        """Merge the overlay ``path`` into its backing file (offline: no VM may use the chain)."""
        self._call(["commit", "-q", "-f", fmt, path], "commit")

    def resize(self, path, size, fmt=None, shrink=False):
        args = ["resize", "-q"]
        if fmt:
            args += ["-f", fmt]
        if shrink:
            args.append("--shrink")
        self._call(args + [path, str(int(size))], "resize")

    def convert_argv(self, src, dst, out_fmt, src_fmt=None, compress=False, options=None, sparse=True,
                     threads=None, progress=False, snapshot=None, target_exists=False, force_share=True,
                     out_of_order=None):
        """``force_share``: read without the image lock (-U); ``out_of_order``: -W, by default with ``threads``."""
        self._check_format(out_fmt, "output format")
        self._check_format(src_fmt, "source format")
        args = ["convert"]
        if progress:
            args.append("-p")
        if force_share:
            args.append("-U")
        if src_fmt:
            args += ["-f", src_fmt]
        args += ["-O", out_fmt]
        if compress:
            args.append("-c")
        if not sparse:
            args += ["-S", "0"]
        if threads:
            args += ["-m", str(int(threads))]
        if bool(threads) if out_of_order is None else out_of_order:
            args.append("-W")
        if snapshot:
            # read internal snapshot ``snapshot`` of src, not its current state
            args += ["-l", "snapshot.name=%s" % snapshot.replace(",", ",,")]
        if target_exists:
            args.append("-n")  # write into dst as it is (made by libvirt), do not create it
        args += self._options(options)
        args += [src, dst]
        return [self.binary] + [str(a) for a in args]

    def convert(self, src, dst, out_fmt, src_fmt=None, compress=False, options=None, sparse=True,
                threads=None, progress=None, snapshot=None, target_exists=False):
        """Convert ``src`` to ``dst``.  ``progress(percent)`` is called while it runs, if given."""
        argv = self.convert_argv(src, dst, out_fmt, src_fmt, compress, options, sparse, threads,
                                 progress=progress is not None, snapshot=snapshot, target_exists=target_exists)
        if progress is None:
            rc, out, err = self._run(argv)
        else:
            rc, out, err = _run_with_progress(argv, progress)
        if rc != 0:
            raise CommandError(
                "qemu-img convert failed (rc=%s): %s" % (rc, " ".join((err or out or "").split()) or "no output"),
                cmd=argv,
                rc=rc,
                stdout=out,
                stderr=err,
            )


def _run_with_progress(argv, callback, poll_interval=0.5):
    """Run qemu-img with ``-p``, calling ``callback(percent)`` as progress lines arrive."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise BackendError("cannot start %s: %s" % (argv[0], exc))
    collected = []
    last = -1.0
    last_call = 0.0
    buf = b""
    while True:
        chunk = proc.stdout.read1(256) if hasattr(proc.stdout, "read1") else proc.stdout.read(256)
        if not chunk:
            break
        buf += chunk
        collected.append(chunk)
        matches = _PROGRESS_RE.findall(buf.decode("ascii", "replace"))
        buf = buf[-64:]
        if matches:
            percent = float(matches[-1])
            now = time.time()
            if percent != last and (now - last_call >= poll_interval or percent >= 100.0):
                callback(percent)
                last, last_call = percent, now
    err = proc.stderr.read()
    proc.wait()
    if proc.returncode == 0 and last < 100.0:
        callback(100.0)
    return proc.returncode, b"".join(collected).decode("utf-8", "replace"), err.decode("utf-8", "replace")
