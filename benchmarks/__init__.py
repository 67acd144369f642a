# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmarks of virtops.libvirt (see benchmarks/README.md): python -m benchmarks [SCENARIO...]."""
