# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SHA-512 crypt implementations we did not write, the oracles of the password tests: the ``crypt``
module (gone in Python 3.13) and passlib; None where missing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:  # Python >= 3.13
        crypt = None

try:
    from passlib.hash import sha512_crypt as passlib_sha512
except ImportError:
    passlib_sha512 = None

__all__ = ("crypt", "passlib_sha512")
