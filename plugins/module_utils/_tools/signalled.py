# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A long run (export, backup) whose steps remember the error they raise and that turns SIGTERM/SIGINT into
an exception, so that its undo still runs when the task is killed (``async`` timeouts, Ctrl-C)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import signal
import threading


class SignalledRun:
    """Mixin: ``self.error`` (what a guarded step raised) and the signal handlers ``catch_signals`` installs;
    subclasses define ``interrupted(signum)``, the exception a signal becomes."""

    error = None
    signals = None

    def interrupted(self, signum):
        raise NotImplementedError

    def guard(self, action):
        """``action`` that remembers the error it raises (for the progress file)."""
        def run():
            try:
                action()
            except BaseException as exc:
                self.error = exc
                raise
        return run

    def _on_signal(self, signum, _frame):
        raise self.interrupted(signum)

    def catch_signals(self):
        """SIGTERM and SIGINT raise ``interrupted(signum)`` from now on (only the main thread can set them)."""
        self.signals = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.signals[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self):
        for sig, handler in (self.signals or {}).items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):
                pass
        self.signals = {}
