# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import (
    from_libvirt_units,
    human_size,
    parse_size,
    to_libvirt_units,
)

GiB = 1024 ** 3


@pytest.mark.parametrize(
    "value, expected",
    [
        (0, 0),
        (512, 512),
        ("512", 512),
        ("20G", 20 * GiB),
        ("20g", 20 * GiB),
        ("20 G", 20 * GiB),
        ("20GiB", 20 * GiB),
        ("20GB", 20 * 10 ** 9),
        ("512MiB", 512 * 1024 ** 2),
        ("512M", 512 * 1024 ** 2),
        ("1 TiB", 1024 ** 4),
        ("1T", 1024 ** 4),
        ("1.5G", 3 * GiB // 2),
        ("4k", 4096),
        ("4KB", 4000),
        ("100B", 100),
        ("7 bytes", 7),
        (" 3 MiB ", 3 * 1024 ** 2),
        ("1P", 1024 ** 5),
        ("1E", 1024 ** 6),
    ],
)
def test_parse_size_accepts(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("", "cannot read"),
        ("abc", "cannot read"),
        ("20X", "unknown unit 'x'"),
        ("20 GiBs", "unknown unit"),
        ("-5G", "cannot read"),
        ("1.2.3G", "cannot read"),
        ("0.3B", "not a whole number"),
        ("G", "cannot read"),
        (True, "boolean"),
        ([1], "expected a size"),
        ("20 G B", "cannot read"),
    ],
)
def test_parse_size_rejects_with_precise_message(value, fragment):
    with pytest.raises(InvalidInputError) as err:
        parse_size(value, name="capacity")
    assert fragment in err.value.msg
    assert err.value.msg.startswith("capacity:")


def test_parse_size_zero_can_be_refused():
    with pytest.raises(InvalidInputError, match="greater than zero"):
        parse_size("0", name="memory", allow_zero=False)


@pytest.mark.parametrize(
    "num, text",
    [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (20 * GiB, "20 GiB"), (3 * GiB // 2, "1.5 GiB"), (1024 ** 4, "1 TiB")],
)
def test_human_size(num, text):
    assert human_size(num) == text


def test_libvirt_units_round_trip():
    assert to_libvirt_units(GiB, "KiB") == 1048576
    assert to_libvirt_units(1025, "KiB") == 2  # rounds up: never give a guest less than asked
    assert to_libvirt_units(GiB, "MiB") == 1024
    assert from_libvirt_units("1048576", "KiB") == GiB
    assert from_libvirt_units(1, "G") == GiB
    assert from_libvirt_units(5, "bytes") == 5
