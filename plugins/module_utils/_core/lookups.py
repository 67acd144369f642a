# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Looking up libvirt objects by name, one way each, with an explicit policy:

* ``find_*``: the object, or None when libvirt says it does not exist (other errors are raised,
  translated);
* ``get_*``: the object, or :class:`NotFoundError` naming it;
* :func:`retry_busy` / :func:`refresh_pool`: call again while a pool is busy with async jobs.

Messages say "VM" for a domain, "storage pool", "network", "volume".
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import (
    libvirt,
    libvirt_errors,
    translate_libvirt_error,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag

#: what libvirt says while a pool runs async jobs (a volume being built or wiped)
BUSY_MARKERS = ("asynchronous jobs", "is busy", "still being", "is being built")


def lookup_or_none(lookup, name, not_found_code, noun):
    """``lookup(name)``, or None when libvirt says ``not_found_code``; other errors are translated."""
    try:
        return lookup(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == not_found_code:
            return None
        with libvirt_errors("looking up %s '%s'" % (noun, name)):
            raise


def _get(found, noun, name):
    if found is None:
        raise NotFoundError("%s '%s' does not exist" % (noun, name))
    return found


def find_vm(conn, name):
    """The VM (libvirt domain) ``name``, or None."""
    return lookup_or_none(conn.lookupByName, name, flag("VIR_ERR_NO_DOMAIN", 42), "VM")


def get_vm(conn, name):
    """The VM ``name``; NotFoundError when there is none."""
    return _get(find_vm(conn, name), "VM", name)


def find_network(conn, name):
    """The network ``name``, or None."""
    return lookup_or_none(conn.networkLookupByName, name, flag("VIR_ERR_NO_NETWORK", 43), "network")


def get_network(conn, name):
    """The network ``name``; NotFoundError when there is none."""
    return _get(find_network(conn, name), "network", name)


def find_pool(conn, name):
    """The storage pool ``name``, or None."""
    return lookup_or_none(conn.storagePoolLookupByName, name, flag("VIR_ERR_NO_STORAGE_POOL", 49), "storage pool")


def get_pool(conn, name):
    """The storage pool ``name``; NotFoundError when there is none."""
    return _get(find_pool(conn, name), "storage pool", name)


def find_volume(pool, name):
    """The volume ``name`` in the storage pool object ``pool``, or None."""
    return lookup_or_none(pool.storageVolLookupByName, name, flag("VIR_ERR_NO_STORAGE_VOL", 50), "volume")


def is_busy(exc):
    """Whether a libvirt error says the pool is busy (async jobs); trying again later helps."""
    message = (exc.get_error_message() or str(exc) or "").lower()
    return any(marker in message for marker in BUSY_MARKERS)


def retry_busy(func, what, timeout=120.0, sleep=time.sleep):
    """Call ``func()``; while libvirt says the pool is busy (async jobs), wait and try again.

    Other libvirt errors (and a pool still busy after ``timeout`` seconds) raise the translated
    error, ``what`` ("refreshing storage pool 'p'") in front of libvirt's message.
    """
    deadline = time.time() + timeout
    delay = 0.1
    while True:
        try:
            return func()
        except libvirt.libvirtError as exc:
            if is_busy(exc) and time.time() < deadline:
                sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            raise translate_libvirt_error(exc, what)


def refresh_pool(pool, timeout=120.0, sleep=time.sleep):
    """Refresh the storage pool object ``pool`` (rescan its volumes), waiting while it is busy."""
    return retry_busy(lambda: pool.refresh(0), "refreshing storage pool '%s'" % pool.name(), timeout, sleep)
