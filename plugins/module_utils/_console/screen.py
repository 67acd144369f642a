# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A screenshot of a VM's display (:func:`take_screenshot`) as PNG bytes, and what a PNG's header says
(:func:`png_size`).

libvirt's ``virDomainScreenshot`` streams what the hypervisor's screen dump gives: QEMU 7.1 and later
write PNG (``image/png``), older QEMU a PPM image (``image/x-portable-pixmap``), which
:func:`ppm_to_png` turns into PNG with zlib alone, so no image library is needed.  QEMU dumps the
emulated video card's frame buffer: it works with VNC, SPICE or no ``<graphics>`` at all, as long
as the VM has a video device (libvirt adds one with ``<graphics>``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct
import zlib

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._console.stream import libvirt_stream
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, ConflictError, InvalidInputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_MIME = "image/png"
PPM_MIMES = ("image/x-portable-pixmap", "image/x-portable-anymap")
_CHUNK = 256 * 1024


def png_size(data):
    """``(width, height)`` from a PNG's IHDR chunk; BackendError when ``data`` is not a PNG."""
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise BackendError("the screenshot is not a PNG image (it starts with %r)" % (bytes(data[:16]),))
    return struct.unpack(">II", data[16:24])


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _ppm_fields(data):
    """The binary PPM (P6) header fields and where the pixels start."""
    fields, pos = [], 0
    while len(fields) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        if end == pos:
            raise BackendError("the screenshot is a truncated PPM image")
        fields.append(data[pos:end])
        pos = end
    return fields, pos + 1


def ppm_to_png(data):
    """A binary PPM (P6, 8 bits per sample) as PNG bytes."""
    fields, start = _ppm_fields(data)
    if fields[0] != b"P6" or fields[3] != b"255":
        raise BackendError("the screenshot is a PPM image of a kind this module cannot convert (%s, maximum %s)"
                           % (fields[0].decode("ascii", "replace"), fields[3].decode("ascii", "replace")))
    width, height = int(fields[1]), int(fields[2])
    row = width * 3
    pixels = data[start:start + row * height]
    if len(pixels) != row * height:
        raise BackendError("the screenshot is a truncated PPM image (%d of %d bytes)" % (len(pixels), row * height))
    raw = b"".join(b"\x00" + pixels[y * row:(y + 1) * row] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def has_display(root):
    """Whether the live domain XML ``root`` has a video device a screen dump can read."""
    models = [v.find("model") for v in root.findall("devices/video")]
    return any(m is None or m.get("type") != "none" for m in models)


def _receive(stream):
    data = bytearray()
    while True:
        chunk = stream.recv(_CHUNK)
        if isinstance(chunk, int):  # -2: would block (not for a blocking stream); -1: error
            raise BackendError("reading the screenshot stream failed (%d)" % chunk)
        if not chunk:
            return bytes(data)
        data.extend(chunk)


def take_screenshot(conn, dom, screen=0):
    """``(png_bytes, mime_from_libvirt)`` of display ``screen`` of the running VM ``dom``."""
    name = dom.name()
    with libvirt_errors("reading VM '%s'" % name):
        active = dom.isActive()
        root = _xml.parse(dom.XMLDesc(0), "domain XML") if active else None
    if not active:
        raise ConflictError("VM '%s' is not running: only a running VM has a screen to take a screenshot of" % name)
    if conn.getType() == "QEMU" and not has_display(root):
        raise InvalidInputError("VM '%s' has no display (no video device): give it graphics (type vnc or spice) or a "
                                "video device to take screenshots; the serial console is read with serial" % name)
    with libvirt_stream(conn, 0, "opening a stream for the screenshot of VM '%s'" % name) as stream:
        with libvirt_errors("taking a screenshot of screen %d of VM '%s'" % (screen, name)):
            mime = dom.screenshot(stream, int(screen), 0)
            data = _receive(stream)
            stream.finish()
    if mime in PPM_MIMES or data[:2] == b"P6":
        return ppm_to_png(data), mime
    png_size(data)
    return data, mime
