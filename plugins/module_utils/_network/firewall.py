# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Port forwards from the hypervisor into the guests of a NAT network: the manager.

libvirt has no option for this; its answer is a hook script.  We manage three things on the
hypervisor, all named after the network: the live firewall rules (``firewall_rules``), a record
of the forwards and the libvirt network hook that applies them whenever libvirt starts the network
(``firewall_hook``).  :class:`PortForwards` reads all three and plans the changes.

The firewall is the one of the machine the module runs on, so all of this needs a local ``uri``
and root.  libvirt before 10.4 always uses iptables (``iptables`` is iptables-nft or -legacy, the
same binary libvirt calls); a libvirt configured for its nftables backend is refused with a clear
message, as rules in our own nftables table could not override libvirt's rejects.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core.binaries import find_binary
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    VirtopsError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._network.firewall_hook import (
    hook_text,
    network_daemon_pids,
    network_hook_present,
    read_file,
    reload_daemon,
    remove_file,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._network.firewall_rules import (
    Iptables,
    chain_name,
    forward_label,
    in_sync,
    live_forwards,
    run_commands,
    sort_forwards,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import atomic_write

ETC_LIBVIRT = "/etc/libvirt"
STATE_SUBDIR = os.path.join("virtops", "port-forwards")
HOOK_NAME = "virtops-port-forwards"
LIBVIRT_NFT_VERSION = 10004000  # libvirt 10.4.0 added the nftables firewall backend


# ------------------------------------------------------------------------------ where we run ---

def is_root():
    return os.geteuid() == 0


def libvirt_firewall_backend(lib_version, etc_dir=ETC_LIBVIRT):
    """'iptables' or 'nftables': the backend the libvirt network driver uses for its own rules."""
    if lib_version < LIBVIRT_NFT_VERSION:
        return "iptables"
    try:
        with open(os.path.join(etc_dir, "network.conf")) as handle:
            for line in handle:
                match = re.match(r'^\s*firewall_backend\s*=\s*"([a-z]+)"', line)
                if match:
                    return match.group(1)
    except (IOError, OSError):
        pass
    # libvirt's default: nftables when nft is installed, iptables otherwise
    return "nftables" if find_binary("nft") else "iptables"

# ------------------------------------------------------------------------------ the manager ---


class PortForwards:
    """The port forwards of one network on this hypervisor: read, compare, plan.

    ``ctx`` gives ``run_command``, ``uri`` and ``warn``; ``etc_dir`` is libvirt's configuration
    directory (``/etc/libvirt``).
    """

    def __init__(self, ctx, network, etc_dir=ETC_LIBVIRT):
        self.ctx = ctx
        self.network = network
        self.etc_dir = etc_dir
        self.state_dir = os.path.join(etc_dir, STATE_SUBDIR)
        self.state_path = os.path.join(self.state_dir, network + ".json")
        self.hooks_dir = os.path.join(etc_dir, "hooks")
        self.hook_path = os.path.join(self.hooks_dir, "network.d", HOOK_NAME)
        self.backend = None
        self.live = None
        self.state = None

    # --- preconditions ----------------------------------------------------------------------

    def require_usable(self, lib_version):
        """Refuse, before anything changes, where we cannot manage the hypervisor's firewall."""
        uri = self.ctx.uri or "qemu:///system"
        if not uri_is_local(uri):
            raise InvalidInputError(
                "port_forwards changes the firewall of the hypervisor, so the module must run on it: uri %r is "
                "remote. Run this task on the hypervisor itself (for example with delegate_to) with a local uri "
                "such as qemu:///system" % uri)
        if not is_root():
            raise InvalidInputError("port_forwards changes the hypervisor's firewall and libvirt's hook directory: "
                                    "run the module as root (become: true)")
        backend = libvirt_firewall_backend(lib_version, self.etc_dir)
        if backend != "iptables":
            raise ConflictError(
                "libvirt on this hypervisor uses its %s firewall backend; port_forwards supports libvirt's iptables "
                "backend only (set firewall_backend = \"iptables\" in %s)" % (backend, os.path.join(self.etc_dir, "network.conf")))
        iptables = find_binary("iptables")
        if iptables is None:
            raise MissingDependencyError("port_forwards needs the iptables command on the hypervisor (libvirt's firewall tool)")
        self.backend = Iptables(self.ctx.run_command, iptables)

    # --- read -------------------------------------------------------------------------------

    def read_state(self):
        text, _mode = read_file(self.state_path)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return {"unreadable": True}

    def read_live(self):
        live = self.backend.read(self.network)
        chain = chain_name(self.network)
        others = sorted(o for o in live["owners"] if o is not None and o != self.network)
        if others:
            raise ConflictError("the firewall chain %s of network %s is also used by network(s) %s: remove their "
                                "port forwards first" % (chain, self.network, ", ".join(others)))
        if None in live["owners"]:
            raise ConflictError("the firewall chain %s of network %s holds or is jumped to by rules that this module did "
                                "not make (they have no virtops-libvirt comment): remove them first" % (chain, self.network))
        return live

    def read(self, active):
        """Forwards in effect: the live rules of an active network, else the recorded ones."""
        self.state = self.read_state()
        self.live = self.read_live()
        if active:
            return live_forwards(self.network, self.live)
        return sort_forwards(copy.deepcopy((self.state or {}).get("forwards") or []))

    # --- documents --------------------------------------------------------------------------

    def state_doc(self, forwards, uuid):
        return dict(
            managed_by="virtops.libvirt.network",
            network=self.network,
            uuid=uuid,
            backend=self.backend.name,
            forwards=forwards,
            apply=self.backend.apply_commands(self.network, forwards),
            remove=self.backend.remove_commands(self.network),
        )

    @staticmethod
    def _dump(doc):
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    # --- plan -------------------------------------------------------------------------------

    def plan(self, plan, forwards, uuid, get_uuid, active_after, started):
        """Add the steps that make files and rules match ``forwards``.

        ``uuid`` is the network's UUID now (None for a network this run creates; ``get_uuid`` reads it
        when the step runs); ``active_after`` whether the network runs after the plan, ``started``
        whether the plan (re)starts it (so the rules read before are gone).
        """
        old_text = self._dump(self.state) if self.state is not None else None
        if forwards:
            if uuid is None or self.state is None or self._dump(self.state_doc(forwards, uuid)) != old_text:
                plan.add("record port forwards of network %s in %s" % (self.network, self.state_path),
                         lambda: atomic_write(self.state_path, self._dump(self.state_doc(forwards, uuid or get_uuid())), 0o644, make_dirs=True),
                         undo=self._restore(self.state_path, old_text, 0o644))
            self._plan_hook(plan)
        elif self.state is not None:
            plan.add("remove the port forward record %s" % self.state_path, lambda: remove_file(self.state_path),
                     undo=self._restore(self.state_path, old_text, 0o644))
        if active_after and forwards and (started or not in_sync(self.network, self.live, forwards)):
            plan.add("apply port forwards of network %s: %s" % (self.network, ", ".join(forward_label(f) for f in forwards)),
                     lambda: self._apply(forwards), undo=self._undo_live())
        elif (not active_after or not forwards) and (not in_sync(self.network, self.live, [])):
            plan.add("remove the port forward rules of network %s" % self.network,
                     self._remove, undo=self._undo_live())

    def plan_remove(self, plan):
        """Everything of this network goes: rules and record (the shared hook stays)."""
        if self.state is not None:
            old_text = self._dump(self.state)
            plan.add("remove the port forward record %s" % self.state_path, lambda: remove_file(self.state_path),
                     undo=self._restore(self.state_path, old_text, 0o644))
        if not in_sync(self.network, self.live, []):
            plan.add("remove the port forward rules of network %s" % self.network, self._remove, undo=self._undo_live())

    def plan_reapply(self, plan):
        """After a restart: the recorded rules again (the hook does it too once libvirt runs it)."""
        forwards = (self.state or {}).get("forwards") or []
        if forwards and not self.state.get("unreadable"):
            plan.add("apply port forwards of network %s: %s" % (self.network, ", ".join(forward_label(f) for f in forwards)),
                     lambda: self._apply(forwards))

    def _plan_hook(self, plan):
        text = hook_text(self.state_dir)
        have, mode = read_file(self.hook_path)
        if have == text and mode == 0o755:
            return
        present = network_hook_present(self.hooks_dir)
        plan.add("install the libvirt network hook %s" % self.hook_path, lambda: atomic_write(self.hook_path, text, 0o755, make_dirs=True),
                 undo=self._restore(self.hook_path, have, mode or 0o755))
        if not present:
            pids = network_daemon_pids(self.ctx.uri)
            if pids:
                for pid in pids:
                    plan.add("reload the libvirt daemon (pid %d) so that it runs the new network hook" % pid,
                             lambda pid=pid: reload_daemon(pid))
            else:
                plan.warn("could not find the libvirt daemon that runs network hooks: reload it (systemctl reload "
                          "libvirtd or virtnetworkd) so that port forwards come back when the network restarts")

    @staticmethod
    def _restore(path, text, mode):
        def undo():
            if text is None:
                remove_file(path)
            else:
                atomic_write(path, text, mode, make_dirs=True)
        return undo

    def _undo_live(self):
        before = live_forwards(self.network, self.live)
        if before:
            return lambda: run_commands(self.ctx.run_command, self.backend.apply_commands(self.network, before))
        return self._remove

    def _apply(self, forwards):
        """Apply ``forwards``; when that fails midway, put back what was there before (then raise)."""
        try:
            run_commands(self.ctx.run_command, self.backend.apply_commands(self.network, forwards))
            if not in_sync(self.network, self.read_live(), forwards):
                raise BackendError("the port forward rules of network %s are not in place after applying them" % self.network)
        except Exception:
            try:
                self._undo_live()()
            except Exception:  # pylint: disable=broad-except
                pass  # the original error is the one to report
            raise

    def _remove(self):
        run_commands(self.ctx.run_command, self.backend.remove_commands(self.network))
        if not in_sync(self.network, self.read_live(), []):
            raise BackendError("the port forward rules of network %s are still there after removing them" % self.network)


def recorded_forwards(ctx, network, etc_dir=ETC_LIBVIRT):
    """The PortForwards of a network that has a port forward record here, usable; else None (with a
    warning when the record cannot be managed from here)."""
    if not uri_is_local(ctx.uri):
        return None
    forwards = PortForwards(ctx, network, etc_dir)
    if forwards.read_state() is None:
        return None
    try:
        with libvirt_errors("reading the libvirt version"):
            version = ctx.conn.getLibVersion()
        forwards.require_usable(version)
    except VirtopsError as exc:
        ctx.warn("network '%s' has port forwards recorded in %s but they cannot be managed here: %s"
                 % (network, forwards.state_path, exc.msg))
        return None
    return forwards


def plan_recorded_forwards(ctx, network, plan, remove, etc_dir=ETC_LIBVIRT):
    """The recorded port forwards of a network that is removed (``remove``: rules and record go) or
    restarted (the rules are applied again)."""
    forwards = recorded_forwards(ctx, network, etc_dir)
    if forwards is None:
        return
    forwards.read(False)
    if remove:
        forwards.plan_remove(plan)
    else:
        forwards.plan_reapply(plan)
