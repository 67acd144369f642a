# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Finding a host program, one way: the PATH and the sbin directories (Ansible's ``get_bin_path``
looks there too; a module run by a non-login shell often lacks them in PATH)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil

SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_binary(name, extra_dirs=SBIN_DIRS, path=None):
    """Absolute path of the program ``name`` or None; ``path`` defaults to the environment's PATH."""
    search = [d for d in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep) if d]
    search.extend(d for d in extra_dirs if d not in search)
    return shutil.which(name, path=os.pathsep.join(search))
