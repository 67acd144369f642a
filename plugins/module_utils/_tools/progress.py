# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress of long operations, as a small JSON file a poller can read while the task runs.

:class:`Progress` counts bytes of work done against a total and writes, at most every
``interval`` seconds (and at every phase change and at the end), a JSON document::

    {"state": "running", "phase": "converting disk vda", "bytes_done": 1073741824,
     "bytes_total": 4294967296, "percent": 25.0, "eta_seconds": 31, "elapsed_seconds": 10.4,
     "bytes_per_second": 103079215, "started": "2024-05-01T10:00:00Z", "updated": "...", "pid": 4242}

``state`` ends as ``done`` or ``failed`` (with ``message``).  The file is replaced atomically (a
temporary file in the same directory, then a rename), so a reader never sees half a document.
``percent`` never goes backwards, even when the total grows as the work is better known.

:func:`run_with_percent` runs a command that prints ``(NN.NN/100%)`` progress (``qemu-img -p``),
reports it, and kills the command if the caller is interrupted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import atomic_write

#: the progress file is read by whoever polls it (as a plain ``open()`` made it before)
PROGRESS_MODE = 0o644
_PERCENT_RE = re.compile(r"\((\d+(?:\.\d+)?)/100%\)")


def _iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Progress:
    """Bytes done out of a total, with phase, rate and ETA; written to ``path`` when one is given."""

    def __init__(self, path=None, interval=1.0, clock=time.monotonic, wall=time.time):
        if path is not None:
            if not os.path.isabs(path):
                raise InvalidInputError("progress_file must be an absolute path, not %r" % path)
            if not os.path.isdir(os.path.dirname(path) or "/"):
                raise InvalidInputError("progress_file: the directory %s does not exist" % os.path.dirname(path))
        self.path = path
        self.interval = interval
        self._clock = clock
        self._wall = wall
        self.started_wall = wall()
        self.started = clock()
        self.total = 0
        self.done = 0
        self.phase = "starting"
        self.state = "running"
        self.message = None
        self._percent = 0.0
        self._last_write = None

    # --- counting --------------------------------------------------------------------------------

    def add_total(self, nbytes):
        self.total += max(int(nbytes), 0)

    def advance(self, nbytes):
        self.done += max(int(nbytes), 0)
        self.write()

    def set_phase(self, phase):
        self.phase = phase
        self.write(force=True)

    def elapsed(self):
        return max(self._clock() - self.started, 0.0)

    def percent(self):
        if self.total <= 0:
            value = 100.0 if self.state == "done" else 0.0
        else:
            value = min(100.0 * self.done / self.total, 100.0)
        if self.state == "done":
            value = 100.0
        self._percent = max(self._percent, value)
        return round(self._percent, 2)

    def snapshot(self):
        """The document as a dict (what the file holds)."""
        elapsed = self.elapsed()
        rate = int(self.done / elapsed) if elapsed > 0 and self.done else 0
        eta = None
        if self.state == "running" and rate > 0 and self.total >= self.done:
            eta = int(round((self.total - self.done) / float(rate)))
        elif self.state == "done":
            eta = 0
        return dict(
            state=self.state,
            phase=self.phase,
            bytes_done=min(self.done, self.total) if self.total else self.done,
            bytes_total=self.total,
            percent=self.percent(),
            eta_seconds=eta,
            elapsed_seconds=round(elapsed, 1),
            bytes_per_second=rate,
            started=_iso(self.started_wall),
            updated=_iso(self._wall()),
            pid=os.getpid(),
            message=self.message,
        )

    # --- the file --------------------------------------------------------------------------------

    def write(self, force=False):
        if self.path is None:
            return
        now = self._clock()
        if not force and self._last_write is not None and now - self._last_write < self.interval:
            return
        self._last_write = now
        data = json.dumps(self.snapshot(), sort_keys=True) + "\n"
        try:
            atomic_write(self.path, data, mode=PROGRESS_MODE)
        except (IOError, OSError):
            pass  # progress is a courtesy: a full or read-only disk must not fail the operation itself

    def finish(self, ok=True, message=None):
        self.state = "done" if ok else "failed"
        self.message = message
        if ok:
            self.done = max(self.done, self.total)
        self.phase = "finished" if ok else "failed: %s" % (message or "error")
        self.write(force=True)


def run_with_percent(argv, on_percent):
    """Run ``argv`` (which prints ``(NN.NN/100%)`` on stdout, like ``qemu-img -p``); call
    ``on_percent(float)`` as it advances.  Returns ``(rc, stdout, stderr)``.

    The process is killed and reaped if anything (a signal turned into an exception, a failing
    callback) interrupts the loop, so no orphan keeps writing after a failed task.
    """
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise BackendError("cannot start %s: %s" % (argv[0], exc), cmd=list(argv))
    collected = []
    tail = b""
    last = -1.0
    try:
        while True:
            chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(256)
            if not chunk:
                break
            collected.append(chunk)
            tail = (tail + chunk)[-128:]
            found = _PERCENT_RE.findall(tail.decode("ascii", "replace"))
            if found:
                value = float(found[-1])
                if value > last:
                    last = value
                    on_percent(value)
        err = proc.stderr.read()
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()
    if proc.returncode == 0 and last < 100.0:
        on_percent(100.0)
    text = b"".join(collected).decode("utf-8", "replace")
    # keep only the last progress line: a long conversion prints thousands of them
    text = text.replace("\r", "\n").strip().splitlines()
    return proc.returncode, (text[-1] if text else ""), err.decode("utf-8", "replace")
