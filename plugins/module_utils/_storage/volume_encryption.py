# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LUKS-encrypted volumes: the ``<encryption>`` element of a new volume, and the secret it names.

libvirt makes the volume (``qemu-img create`` with the LUKS passphrase taken from the libvirt secret,
never on a command line) when the volume XML's ``<target>`` has
``<encryption format='luks'><secret type='passphrase' uuid='...'/></encryption>``.  The secret (see the
``secret`` module) must exist and have its value.  It is named by UUID or by its usage (a volume
secret's usage is, by convention, the volume's path); this module writes the UUID it found.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.encryption_xml import is_uuid


#: libvirt's secret usage types by name (the ``secret`` module's ``usage_type``)
USAGE_TYPES = {"volume": ("VIR_SECRET_USAGE_TYPE_VOLUME", 1), "ceph": ("VIR_SECRET_USAGE_TYPE_CEPH", 2),
               "iscsi": ("VIR_SECRET_USAGE_TYPE_ISCSI", 3)}


def secret_uuid(ctx, secret, what, usage_type="volume"):
    """The UUID of the secret ``secret`` (a UUID, or the usage of a secret of ``usage_type``); None when it
    does not exist and check mode assumes an earlier task defines it (a real run raises NotFoundError)."""
    try:
        if is_uuid(secret):
            found = ctx.conn.secretLookupByUUIDString(secret)
        else:
            found = ctx.conn.secretLookupByUsage(flag(*USAGE_TYPES[usage_type]), secret)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != flag("VIR_ERR_NO_SECRET", 66):
            with libvirt_errors("looking up secret %s" % secret):
                raise
        ctx.assume(NotFoundError("%s: libvirt has no secret %s (define it first with the secret module, with its value)"
                                 % (what, secret if is_uuid(secret) else "of usage %s %r" % (usage_type, secret))))
        return None
    with libvirt_errors("reading secret %s" % secret):
        return found.UUIDString()
