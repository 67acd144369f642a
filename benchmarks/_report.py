# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Statistics (medians over BENCH_REPS, ratios to a baseline of the same run, every run listed) and the results
files: benchmarks/results/<scenario>-<UTC stamp>.md (the table the README keeps) and .json (every number)."""

import json
import os

from ._util import RESULTS, log, utc


def median(values):
    """The median, the mean of the middle two for an even count.

    >>> median([3.0, 1.0, 2.0])
    2.0
    >>> median([4, 1, 2, 3])
    2.5
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of nothing")
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


class Runs:
    """Measurements by key (a variant), in the order they were taken.

    >>> r = Runs()
    >>> for v in (1.2, 1.0, 1.4):
    ...     r.add("a", v)
    >>> r.add("b", 3.0)
    >>> r.median("a"), r.fastest("a"), r.ratio("b", "a")
    (1.2, 1.0, 2.5)
    >>> r.listed("a", "%.1f")
    '1.2 1.0 1.4'
    """

    def __init__(self):
        self.values = {}

    def add(self, key, value):
        self.values.setdefault(key, []).append(value)

    def __contains__(self, key):
        return key in self.values

    def median(self, key):
        return median(self.values[key])

    def fastest(self, key):
        return min(self.values[key])

    def ratio(self, key, base):
        """Median of key over the median of base."""
        return self.median(key) / self.median(base)

    def listed(self, key, fmt="%.3f", scale=1.0):
        return " ".join(fmt % (v * scale) for v in self.values[key])


def ratio(value, base):
    """'1.64x'.

    >>> ratio(6.4, 4.0)
    '1.60x'
    """
    return "%.2fx" % (value / base)


def table(headers, rows, right=()):
    """A Markdown table; columns whose index is in `right` are right-aligned (numbers).

    >>> print(table(["a", "n"], [["x", 1]], right=(1,)))
    | a | n |
    |---|---:|
    | x | 1 |
    """
    lines = ["| %s |" % " | ".join(headers),
             "|%s|" % "|".join("---:" if i in right else "---" for i in range(len(headers)))]
    lines += ["| %s |" % " | ".join(str(c) for c in row) for row in rows]
    return "\n".join(lines)


class Report:
    """What one scenario run found: facts about the run, one main table, more sections, raw numbers."""

    def __init__(self, scenario, title):
        self.scenario = scenario
        self.title = title
        self.facts = []
        self.sections = []
        self.data = {}
        self.extra_files = {}

    def fact(self, text):
        self.facts.append(text)

    def section(self, text):
        self.sections.append(text)

    def attach(self, suffix, text):
        """Another results file, <scenario>-<stamp>-<suffix> (a profile, for example)."""
        self.extra_files[suffix] = text

    def markdown(self):
        out = ["## %s: %s" % (self.scenario, self.title), ""]
        out += ["- %s" % f for f in self.facts]
        for s in self.sections:
            out += ["", s]
        return "\n".join(out) + "\n"

    def write(self):
        """Write the results files, print the Markdown; the path of the .md file."""
        os.makedirs(RESULTS, exist_ok=True)
        base = os.path.join(RESULTS, "%s-%s" % (self.scenario, utc("%Y%m%d-%H%M%S")))
        text = self.markdown()
        with open(base + ".md", "w") as f:
            f.write(text)
        with open(base + ".json", "w") as f:
            json.dump(dict(scenario=self.scenario, facts=self.facts, data=self.data), f, indent=1, sort_keys=True)
        for suffix, body in self.extra_files.items():
            with open("%s-%s" % (base, suffix), "w") as f:
                f.write(body)
        print(text, flush=True)
        log("written to %s.md (and .json%s)" % (base, "".join(", -" + s for s in self.extra_files)))
        return base + ".md"
