# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A libvirt stream (:func:`libvirt_stream`) that is aborted when what uses it fails: a screenshot,
a console."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors


@contextlib.contextmanager
def libvirt_stream(conn, flags, doing):
    """``conn.newStream(flags)``; an error inside the block aborts it (and is raised), ``doing`` names the opening."""
    with libvirt_errors(doing):
        stream = conn.newStream(flags)
    try:
        yield stream
    except BaseException:
        try:
            stream.abort()
        except libvirt.libvirtError:
            pass  # the stream is broken already: the first error is the one to report
        raise
