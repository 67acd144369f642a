# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""File modes: parsing the ``mode`` options, and files that are never more open than their final mode.

A file that is written in steps (a temporary name, then a rename) is created empty, at once, with
the final mode (:func:`create_file`); the tools that fill it (``qemu-img convert``, compressors,
Python) open the existing file and keep its mode, and the process umask can only take bits away.
The exact mode is set once more before the rename (``os.chmod``), so a umask does not leave a file
less open than asked either.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

_OCTAL = re.compile(r"^0?[0-7]{3,4}$")


def parse_mode(mode, what="mode", maximum=0o7777):
    """A file mode given as an int or an octal string ('0644', '644') -> int; None stays None."""
    if mode is None:
        return None
    if isinstance(mode, int) and not isinstance(mode, bool):
        value = mode
    elif isinstance(mode, str) and _OCTAL.match(mode.strip()):
        value = int(mode.strip(), 8)
    else:
        raise InvalidInputError("%s must be an octal number such as '0644', not %r" % (what, mode))
    if value < 0 or value > maximum:
        raise InvalidInputError("%s %o is out of range (at most %04o)" % (what, value, maximum))
    return value


def mode_text(mode):
    """``0o600`` -> ``'0600'``."""
    return "%04o" % mode


def dir_mode(mode):
    """The mode of a directory holding files of ``mode``: search permission wherever read permission is."""
    return mode | ((mode & 0o444) >> 2)


def create_file(path, mode):
    """Create ``path`` empty with ``mode`` (a leftover of the same name is replaced); nothing else can have opened it."""
    for _attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            os.unlink(path)
            continue
        os.close(fd)
        return path
    raise OSError(errno.EEXIST, "%s appeared again while it was being replaced" % path)


def file_modes(paths):
    """``{path: mode}`` of those of ``paths`` that exist (links are not followed)."""
    out = {}
    for path in paths:
        try:
            out[path] = os.lstat(path).st_mode & 0o7777
        except OSError:
            continue
    return out
