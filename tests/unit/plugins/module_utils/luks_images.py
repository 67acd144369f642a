# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted test images made by the real qemu-img: a LUKS image or a LUKS-encrypted qcow2."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

ATTEMPTS = 30


def encrypted(path, fmt, size="1M", passphrase="pw"):
    """Make ``path``, ``fmt`` ``luks`` or ``qcow2``.  qemu-img times its key derivation, and QEMU before 9.2.1
    fails that benchmark now and then ("Unable to get accurate CPU usage", ~25 % of the runs here, busy or
    not): tried up to ATTEMPTS times."""
    opts = "key-secret=s0,iter-time=10" if fmt == "luks" else "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"
    argv = ["qemu-img", "create", "-q", "--object", "secret,id=s0,data=%s" % passphrase, "-f", fmt, "-o", opts, path, size]
    for attempt in range(ATTEMPTS):
        try:
            subprocess.run(argv, check=True, capture_output=True)
            return
        except subprocess.CalledProcessError:
            if attempt == ATTEMPTS - 1:
                raise
