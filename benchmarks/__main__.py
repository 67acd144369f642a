# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""python -m benchmarks [--check] [SCENARIO...]: run the benchmarks (all by default)."""

import sys

from ._session import main

sys.exit(main())
