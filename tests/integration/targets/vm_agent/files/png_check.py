#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decode a PNG with zlib alone (an oracle independent of the module): check the signature and every
chunk's CRC, undo the row filters, and print JSON with the size, the number of distinct pixels and
of distinct rows (a blank screen has one of each)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import struct
import sys
import zlib

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def unfilter(raw, width, height, bpp):
    stride = width * bpp
    rows, prev, pos = [], bytearray(stride), 0
    for _y in range(height):
        kind, line = raw[pos], bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            corner = prev[i - bpp] if i >= bpp else 0
            add = (0, left, up, (left + up) // 2, paeth(left, up, corner))[kind]
            line[i] = (line[i] + add) & 0xFF
        rows.append(bytes(line))
        prev = line
    return rows


def main(path):
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, "bad CRC in chunk %r" % kind
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
        if kind == b"IEND":
            break
    width, height, depth, color, _comp, _filt, interlace = header
    assert depth == 8 and interlace == 0, "only 8-bit, non-interlaced images are checked here"
    bpp = CHANNELS[color]
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + width * bpp), "pixel data of the wrong size"
    rows = unfilter(raw, width, height, bpp)
    pixels = set()
    for row in rows:
        pixels.update(row[i:i + bpp] for i in range(0, len(row), bpp))
    print(json.dumps(dict(width=width, height=height, distinct_pixels=len(pixels), distinct_rows=len(set(rows)))))


if __name__ == "__main__":
    main(sys.argv[1])
