# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run states of VMs and pools in the modules' words (``run_state``, ``state_word``): what
``host_info`` counts and ``vm``, ``vm_info``, ``snapshot`` and the usage checks compare.  The facts
of a host are in ``capabilities`` (what a VM definition is checked against) and ``info``
(``host_info``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# virDomainState numbers -> names (stable libvirt ABI)
DOMAIN_STATES = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}
#: libvirt's state names in the words of ``vm``'s ``state`` option
_STATE_WORDS = {"shutoff": "stopped", "blocked": "running"}


def state_word(libvirt_state):
    """libvirt's state name (``shutoff``) in the ``vm`` module's words (``stopped``)."""
    return _STATE_WORDS.get(libvirt_state, libvirt_state)


def run_state(dom):
    """``running``, ``paused``, ``stopped`` or libvirt's name for the rarer states."""
    return state_word(DOMAIN_STATES.get(dom.state()[0], "nostate"))


#: states in which a domain holds memory and vCPUs on the host
ACTIVE_STATES = ("running", "blocked", "paused", "shutdown", "pmsuspended", "crashed")

POOL_STATES = {0: "inactive", 1: "building", 2: "running", 3: "degraded", 4: "inaccessible"}
