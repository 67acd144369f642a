# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Options shared by every module that talks to libvirt (mirrors _connection.COMMON_ARGS).
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - libvirt connection URI of the hypervisor to manage, for example V(qemu:///system),
        V(qemu+ssh://root@kvm1.example.com/system) or V(qemu+tcp://10.0.0.5/system).
      - One connection is opened per task and closed when the task ends.
      - Set it once for a whole play with C(module_defaults) and the action group
        C(group/virtops.libvirt.all).
    type: str
    default: qemu:///system
requirements:
  - python >= 3.9
  - libvirt-python (the C(libvirt) Python binding) on the managed node
  - lxml on the managed node
notes:
  - The modules run on the managed node and talk to the libvirt daemon named by O(uri); to manage a
    hypervisor from the controller, delegate to localhost and use a remote URI.
"""

    # Attributes shared by every module
    ACTIONGROUP = r"""
attributes:
  action_group:
    description: Use C(group/virtops.libvirt.all) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - virtops.libvirt.all
"""

    INFO_MODULE = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - This module only reads; it never reports a change.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: N/A
    details:
      - This module only reads.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""

    RESOURCE_MODULE = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Check mode predicts a play written as ordinary single tasks. Something an earlier task of the
        play would create is assumed, because that task did not run in check mode. This covers a
        pool, a network, a base or backing volume, a seed, or the VM of a snapshot. The result is
        V(changed), with a warning that names the assumption (also returned as C(assumptions)). A
        real run fails when the thing is still missing.
      - The same holds for a refusal because VMs use what a task would stop or delete, as in a
        teardown whose earlier tasks remove those VMs. The refusal text becomes the warning. A real
        run refuses.
      - Removing something whose container is gone is no change. Examples are a volume of a pool that
        does not exist, a seed in such a pool, or a snapshot of a VM that does not exist.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""
