# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sealing the guest of a running VM through its guest agent, then shutting the VM down.

Sealing makes every VM made from the template a new machine: the guest itself forgets that it ran
(``cloud-init clean --logs --seed``: /var/lib/cloud instance state, semaphores, seed and logs) and
who it was (/etc/machine-id emptied, so systemd makes a new one at the next boot and cloud-init
runs as on a first boot).  It runs *in the guest*, through ``guest-exec`` of qemu-guest-agent,
while the VM still runs: the host never mounts or parses the guest's file system.  Then the VM is
shut down (ACPI, :class:`.._domain.power.PowerPlan`) and its disks are read only once it is off.

``--machine-id`` of ``cloud-init clean`` (22.3 and later) writes ``uninitialized``; the script
empties the file itself, which systemd (Debian 12: 252) also treats as a first boot, and works
with older cloud-init too.  The script waits for cloud-init to finish first (``status --wait``),
so a VM sealed right after its first boot is not cleaned while cloud-init still writes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import get_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import agent as _agent
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import ready as _ready
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.power import PowerPlan

#: exit code of the script when the guest has no cloud-init
NO_CLOUD_INIT = 3

SEAL_SCRIPT = "\n".join([
    "command -v cloud-init >/dev/null 2>&1 || exit %d" % NO_CLOUD_INIT,
    "cloud-init status --wait >/dev/null 2>&1",
    "cloud-init clean --logs --seed || exit 1",
    ": > /etc/machine-id || exit 1",
    "rm -f /var/lib/dbus/machine-id",
    "sync",
])

#: what the seal step says it does (plan descriptions, docs)
SEAL_WHAT = "cloud-init clean --logs --seed, empty /etc/machine-id, remove /var/lib/dbus/machine-id"


def check_agent(xml_root, vm_name):
    """Sealing needs the agent channel in the VM's definition."""
    if xml_root.find("devices/channel/target[@name='org.qemu.guest_agent.0']") is None:
        raise InvalidInputError("seal: VM %r has no guest agent channel (org.qemu.guest_agent.0); the guest is sealed through "
                                "qemu-guest-agent: give it guest_agent: true (and the agent in the guest), or stop it and "
                                "give seal: false" % vm_name)


def seal_step(ctx, vm_name, timeout):
    """A step that waits for the agent (up to ``timeout`` s), then runs the seal script in the guest."""

    def call():
        dom = get_vm(ctx.conn, vm_name)
        _ready.wait_ready(dom, ("agent",), timeout)
        out = _agent.guest_exec(dom, "/bin/sh", ["-c", SEAL_SCRIPT], timeout=max(timeout, 30))
        if out["exitcode"] == NO_CLOUD_INIT:
            raise InvalidInputError("seal: the guest of VM %r has no cloud-init; a template is sealed with cloud-init clean: "
                                    "install cloud-init in the guest, or stop the VM and give seal: false" % vm_name)
        if out["exitcode"] != 0 or out["signal"] is not None:
            raise BackendError("seal: sealing the guest of VM %r failed (exit code %s): %s"
                               % (vm_name, out["exitcode"], " ".join((out["stderr"] or out["stdout"] or "").split())[:400]),
                               stdout=out["stdout"], stderr=out["stderr"])

    return call


class _Stopped:
    """What :class:`PowerPlan`'s shutdown asks of a VM: its name and a fresh lookup."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name

    def _lookup(self):
        return get_vm(self.ctx.conn, self.name)


def shutdown_step(ctx, vm_name, timeout):
    """A step that shuts the VM down (ACPI, up to ``timeout`` s; never powers it off)."""
    return PowerPlan(_Stopped(ctx, vm_name))._shutdown(timeout, False)
