# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one size parser of the collection.

Conventions follow libvirt and qemu-img: single-letter suffixes and ``KiB``/``MiB``/... are
powers of 1024 (``20G`` = 20 GiB), ``KB``/``MB``/``GB``/... are powers of 1000, a plain integer
(or ``B``) is bytes.  Case and a space before the unit do not matter; decimals are accepted as
long as the result is a whole number of bytes (``1.5G`` works, ``0.3B`` does not).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from decimal import Decimal, InvalidOperation

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

_BINARY = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}

_UNITS = {"b": 1, "byte": 1, "bytes": 1}
for _letter, _power in _BINARY.items():
    if not _letter:
        continue
    _UNITS[_letter] = 1024 ** _power
    _UNITS[_letter + "ib"] = 1024 ** _power
    _UNITS[_letter + "b"] = 1000 ** _power

_SIZE_RE = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z]*)\s*$")

UNITS_HELP = "a number of bytes or a number with a unit: K, M, G, T, P (powers of 1024, also KiB, MiB...) or KB, MB, GB... (powers of 1000)"


def parse_size(value, name="size", allow_zero=True):
    """Return ``value`` in bytes (int).  Raises InvalidInputError naming ``name`` on junk."""
    if isinstance(value, bool):
        raise InvalidInputError("%s: expected a size, got a boolean (%r)" % (name, value))
    if isinstance(value, int):
        number, unit = Decimal(value), ""
    elif isinstance(value, float):
        number, unit = Decimal(repr(value)), ""
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise InvalidInputError("%s: cannot read %r as a size; use %s" % (name, value, UNITS_HELP))
        try:
            number = Decimal(match.group("num"))
        except InvalidOperation:  # pragma: no cover - the regex admits only digits
            raise InvalidInputError("%s: cannot read %r as a size" % (name, value))
        unit = match.group("unit").lower()
    else:
        raise InvalidInputError("%s: expected a size, got %s" % (name, type(value).__name__))

    if unit and unit not in _UNITS:
        raise InvalidInputError("%s: unknown unit %r in %r; use %s" % (name, unit, value, UNITS_HELP))
    result = number * (_UNITS[unit] if unit else 1)
    if result != result.to_integral_value():
        raise InvalidInputError("%s: %r is not a whole number of bytes" % (name, value))
    if result < 0:
        raise InvalidInputError("%s: %r is negative" % (name, value))
    if result == 0 and not allow_zero:
        raise InvalidInputError("%s: must be greater than zero" % name)
    return int(result)


_BINARY_NAMES = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_size(num_bytes):
    """``21474836480`` -> ``'20 GiB'``; exact for whole units, one decimal otherwise."""
    num = int(num_bytes)
    for power in range(len(_BINARY_NAMES), 0, -1):
        factor = 1024 ** power
        if num >= factor:
            if num % factor == 0:
                return "%d %s" % (num // factor, _BINARY_NAMES[power - 1])
            return "%.1f %s" % (num / float(factor), _BINARY_NAMES[power - 1])
    return "%d B" % num


def to_libvirt_units(num_bytes, unit="KiB"):
    """Bytes -> integer count of ``unit`` (``KiB`` or ``MiB``), as libvirt wants; rounds up."""
    factor = {"b": 1, "bytes": 1, "kib": 1024, "k": 1024, "mib": 1024 ** 2, "m": 1024 ** 2, "gib": 1024 ** 3}[unit.lower()]
    return -(-int(num_bytes) // factor)


def from_libvirt_units(value, unit="KiB"):
    """A libvirt ``<memory unit='KiB'>N</memory>`` style value -> bytes."""
    unit = (unit or "bytes").strip()
    return parse_size("%s %s" % (value, unit), name="libvirt value")


_DURATION_RE = re.compile(r"^\s*(?P<num>[0-9]+)\s*(?P<unit>[smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_HELP = "a number of seconds or a number with a unit: s, m (minutes), h, d, w"


def parse_duration(value, name="duration"):
    """Seconds from ``90``, ``"90"``, ``"30m"``, ``"12h"``, ``"7d"`` or ``"2w"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInputError("%s: %r is not a duration (%s)" % (name, value, DURATION_HELP))
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION_RE.match(str(value).lower())
        if not match:
            raise InvalidInputError("%s: %r is not a duration (%s)" % (name, value, DURATION_HELP))
        seconds = int(match.group("num")) * _DURATION_UNITS[match.group("unit")]
    if seconds <= 0:
        raise InvalidInputError("%s: must be more than zero, got %r" % (name, value))
    return seconds
