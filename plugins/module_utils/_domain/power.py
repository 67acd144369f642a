# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run state of a ``vm``: start, resume, wake up, pause, shut down (ACPI, then power off with
``force``), restart; a restart whose new definition does not start brings the old one back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OperationTimeoutError,
    VirtopsError,
)


def same_kind(error, msg, details):
    """A new error of the kind of ``error`` (a libvirt failure keeps its ``error_kind``)."""
    cls = type(error) if type(error) in (InvalidInputError, NotFoundError, ConflictError) else BackendError
    return cls(msg, **details)


class PowerPlan:
    """Plans the run-state transition of VM ``vm`` (a VmResource)."""

    def __init__(self, vm):
        self.vm = vm

    @property
    def name(self):
        return self.vm.name

    def _lookup(self):
        return self.vm._lookup()

    def _call(self, what, method, *args):
        return self.vm._call(what, method, *args)

    def plan_state(self, current, desired, plan, outcome, redefined=False):
        """Steps from the current run state to the desired one.  A restart (``restarted``, or
        ``apply: restart`` with changes that wait for it) clears ``outcome.reboot_required``."""
        want = desired["state"]
        have = current["state"]
        name = self.name
        apply_restart = self.vm.params.get("apply") == "restart" and outcome.reboot_required
        if want == "present":
            if apply_restart and current["active"]:
                self._plan_stop(have, plan)
                plan.add("start VM %s" % name, self._start_again(current, redefined))
                outcome.reboot_required = False
            return
        if want == "restarted" or (apply_restart and want in ("running", "paused") and current["active"]):
            if current["active"]:
                self._plan_stop(have, plan)
                plan.add("start VM %s" % name, self._start_again(current, redefined))
            else:
                plan.add("start VM %s" % name, self._call("starting", "create"))
            if want == "paused":
                plan.add("pause VM %s" % name, self._call("pausing", "suspend"))
            outcome.reboot_required = False
            return
        if want == "running":
            if have == "stopped":
                plan.add("start VM %s" % name, self._call("starting", "create"), undo=self._call("stopping", "destroy"))
            elif have in ("paused", "pmsuspended"):
                self._plan_resume(have, plan)
            elif have == "crashed":
                plan.add("power off crashed VM %s" % name, self._call("stopping", "destroy"))
                plan.add("start VM %s" % name, self._call("starting", "create"))
        elif want == "paused":
            if have == "stopped":
                plan.add("start VM %s paused" % name,
                         self._call("starting", "createWithFlags", libvirt.VIR_DOMAIN_START_PAUSED))
            elif have != "paused":
                plan.add("pause VM %s" % name, self._call("pausing", "suspend"), undo=self._call("resuming", "resume"))
        elif want == "stopped" and have != "stopped":
            self._plan_stop(have, plan)
            outcome.reboot_required = False

    def plan_wake_first(self, current, desired, plan):
        """A paused (or suspended) VM that is to run is resumed (woken up) *before* the live changes of
        the plan: a guest that does not run cannot answer an unplug request, so a live detach would
        only time out.  Returns the run state the rest of the plan starts from (for :meth:`plan_state`)."""
        have = current["state"]
        if desired["state"] != "running" or have not in ("paused", "pmsuspended"):
            return have
        self._plan_resume(have, plan)
        return "running"

    def _plan_resume(self, have, plan):
        if have == "paused":
            plan.add("resume VM %s" % self.name, self._call("resuming", "resume"), undo=self._call("pausing", "suspend"))
        else:
            plan.add("wake up VM %s" % self.name, self._call("waking up", "pMWakeup", 0))

    def _start_again(self, current, redefined):
        """The start after this plan shut the VM down.  If the new definition does not start, the old
        one is defined again and started, so the VM runs (or is paused) as before, and the error says
        so; the guest was restarted, so the failed result has ``changed: true``."""
        old_xml, was, name = current["xml"], current["state"], self.name

        def call():
            try:
                self._call("starting", "create")()
                return
            except VirtopsError as exc:
                error = exc
            details = dict(error.details, changed=True)
            if not redefined:
                raise same_kind(error, "VM %s was shut down to restart and did not start again (%s); it is stopped"
                                % (name, error.msg), details)
            try:
                self.vm._define(old_xml)
                flags = libvirt.VIR_DOMAIN_START_PAUSED if was == "paused" else 0
                self._call("starting the previous definition of", "createWithFlags", flags)()
            except VirtopsError as again:
                raise same_kind(error, "VM %s did not start with its new definition (%s); its previous definition is "
                                "restored but did not start either (%s): the VM is stopped"
                                % (name, error.msg, again.msg), details)
            raise same_kind(error, "VM %s did not start with its new definition (%s); its previous definition is restored "
                            "and the VM %s again (the guest was restarted): nothing of the change was applied"
                            % (name, error.msg, "is paused" if was == "paused" else "runs"), details)

        return call

    def _plan_stop(self, have, plan):
        timeout = self.vm._timeout("shutdown_timeout")
        force = bool(self.vm.params.get("force"))
        if have == "paused" and force:
            plan.add("power off paused VM %s" % self.name, self._call("stopping", "destroy"))
            return
        if have == "paused":
            plan.add("resume VM %s to shut it down" % self.name, self._call("resuming", "resume"))
        label = "shut down VM %s (ACPI, up to %d s%s)" % (self.name, timeout, ", then power off" if force else "")
        plan.add(label, self._shutdown(timeout, force))

    def _shutdown(self, timeout, force, sleep=time.sleep, clock=time.monotonic):
        def call():
            dom = self._lookup()
            with libvirt_errors("shutting down VM %r" % self.name):
                if not dom.isActive():
                    return
                deadline = clock() + timeout
                self._acpi_shutdown(dom)
                delay = 0.25
                while clock() < deadline:
                    sleep(delay)
                    delay = min(delay * 2, 2.0)
                    if not dom.isActive():
                        return
                    self._acpi_shutdown(dom)  # guests that boot slowly miss the first ACPI event
                # the guest may have gone down after the last look: only a VM that still runs is late
                if not dom.isActive():
                    return
                if force:
                    try:
                        dom.destroy()
                    except libvirt.libvirtError:
                        if dom.isActive():
                            raise
                    return
            raise OperationTimeoutError(
                "VM %r did not shut down within %d s (does the guest react to ACPI?); give force: true to power "
                "it off after the timeout, or a longer shutdown_timeout" % (self.name, timeout))

        return call

    @staticmethod
    def _acpi_shutdown(dom):
        """Press the power button; a guest that is already shutting down or off is not an error."""
        try:
            dom.shutdown()
        except libvirt.libvirtError:
            if dom.isActive() and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING:
                raise
