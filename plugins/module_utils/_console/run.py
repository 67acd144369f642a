# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_console``: send keys and text to a VM's keyboard, save a screenshot of its display, read its
serial console (:func:`run_console`), in that order within one task.

Changed and check mode: sending keys is a change (``changed: true``); check mode sends nothing.  A
screenshot is taken in check mode too (it only reads the display) and ``changed`` says whether the
file would be different; the file is written only outside check mode, atomically, and not at all
when it already holds the same image.  Reading the serial console never changes anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._console import keys as _keys
from ansible_collections.virtops.libvirt.plugins.module_utils._console import screen as _screen
from ansible_collections.virtops.libvirt.plugins.module_utils._console import serial as _serial
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.filemode import parse_mode
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import get_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import atomic_write, sha256_file

#: milliseconds between two key combinations unless ``key_delay`` says otherwise
KEY_DELAY = 50


def _combinations(params):
    """Every key combination to send, in order: ``keys``, then the characters of ``text``."""
    combos = [(k, _keys.parse_combination(k)) for k in params.get("keys") or ()]
    text = params.get("text")
    if text:
        combos.extend((repr(c), codes) for c, codes in zip(text, _keys.text_to_combinations(text)))
    return combos


def _non_negative(params, key, default):
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError("%s: must be a whole number of milliseconds, 0 or more, got %r" % (key, value))
    return value


def send_keys(dom, combos, hold_time=0, delay=KEY_DELAY, sleep=time.sleep):
    """Press and release each combination (its keys together, ``hold_time`` ms; 0: the hypervisor's default)."""
    name = dom.name()
    for label, codes in combos:
        with libvirt_errors("sending %s to VM '%s'" % (label, name)):
            dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, hold_time, codes, len(codes), 0)
        if delay:
            sleep(delay / 1000.0)


def _screenshot(ctx, dom, spec):
    path = spec.get("path")
    if not path:
        raise InvalidInputError("screenshot.path: the file to write the PNG image to is required")
    mode = parse_mode(spec.get("mode") if spec.get("mode") is not None else "0644", "screenshot.mode")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InvalidInputError("screenshot.path: the directory %s does not exist" % directory)
    screen = spec.get("screen") or 0
    data, mime = _screen.take_screenshot(ctx.conn, dom, screen)
    width, height = _screen.png_size(data)
    digest = hashlib.sha256(data).hexdigest()
    same = os.path.isfile(path) and sha256_file(path) == digest
    if not same and not ctx.check_mode:
        atomic_write(path, data, mode=mode)
    return dict(path=path, screen=screen, width=width, height=height, mime_type=mime, format="png",
                bytes=len(data), sha256=digest, changed=not same)


def run_console(ctx):
    """The ``vm_console`` module: keys, text, screenshot, serial, in that order."""
    params = ctx.params
    name = params.get("name")
    validate_object_name(name, "VM")
    combos = _combinations(params)
    hold = _non_negative(params, "hold_time", 0)
    delay = _non_negative(params, "key_delay", KEY_DELAY)
    shot, serial = params.get("screenshot"), params.get("serial")
    if not combos and shot is None and serial is None:
        raise InvalidInputError("vm_console: give keys, text, screenshot or serial: there is nothing to do")
    dom = get_vm(ctx.conn, name)
    out = dict(changed=False, keys_sent=0)
    if combos:
        with libvirt_errors("reading VM '%s'" % name):
            active = dom.isActive()
        if not active:
            raise ConflictError("VM '%s' is not running: keys go to a running VM's keyboard" % name)
        if not ctx.check_mode:
            send_keys(dom, combos, hold, delay)
        out.update(changed=True, keys_sent=len(combos))
    if shot is not None:
        out["screenshot"] = _screenshot(ctx, dom, shot)
        out["changed"] = out["changed"] or out["screenshot"]["changed"]
    if serial is not None:
        lines = serial.get("lines") if serial.get("lines") is not None else 100
        offset = serial.get("offset")
        seconds = serial.get("seconds") if serial.get("seconds") is not None else 2
        if lines < 1 or (offset is not None and offset < 0) or seconds < 0:
            raise InvalidInputError("serial: lines must be 1 or more, offset and seconds 0 or more")
        typed = serial.get("input") if not ctx.check_mode else None  # check mode: read only
        out["serial"] = _serial.read_serial(ctx.conn, dom, lines, offset, seconds, typed)
        if serial.get("input"):
            out["changed"] = True
    return out
