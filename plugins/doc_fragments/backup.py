# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # What backup, backup_info and backup_restore share: the repository (mirrors their ``repository`` argument)
    DOCUMENTATION = r"""
options:
  repository:
    description:
      - The backup repository, a directory on the hypervisor (absolute path); a mounted NFS or CIFS share reaches
        remote storage.
    type: path
    required: true
notes:
  - A repository holds C(<repository>/<vm>/<point>/) per point in time of a VM, each with its C(manifest.json)
    (mode, parent, checkpoint, size and SHA-256 of every file), which is the only record of the point.
  - The module runs on the hypervisor that holds the repository (delegate the task to it).
"""
