# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the time of one module process goes (benchmarks/vm_overhead.py runs this with a venv's python).

  profile_module.py runs N FILE...        median ms of `python -c pass` and of each AnsiballZ FILE run directly,
                                          N times each, interleaved (the machine's load drifts)
  profile_module.py imports N FILE...     median ms of importing ansible.module_utils.basic, then the module with
                                          its module_utils, from the zip each AnsiballZ FILE carries (no .pyc),
                                          in N fresh interpreters each, interleaved
  profile_module.py importtime FILE       one `python -X importtime FILE`: own and cumulative ms per import,
                                          and own ms summed by origin (ansible, the collection, libvirt, lxml...)
  profile_module.py main FQN JSON_ARGS    cProfile of the module's main() with those arguments, the module
                                          imported from sys.path (PYTHONPATH): import ms, main ms, libvirt calls,
                                          the top functions by cumulative time

Every command prints one JSON document. Kept AnsiballZ files come from ANSIBLE_KEEP_REMOTE_FILES=1.
"""

import base64
import cProfile
import importlib
import io
import json
import pstats
import re
import statistics
import subprocess
import sys
import time

COLLECTION_PREFIX = "ansible_collections."
PROBE = """import importlib, sys, time
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
import ansible.module_utils.basic
t1 = time.perf_counter()
importlib.import_module(sys.argv[2])
print("%f %f" % (t1 - t0, time.perf_counter() - t1))
"""


def runs(count, paths):
    argvs = [[sys.executable, "-c", "pass"]] + [[sys.executable, p] for p in paths]
    out = [[] for _item in argvs]
    for _round in range(count):
        for i, argv in enumerate(argvs):
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            out[i].append(1000 * (time.perf_counter() - t0))
    return dict(startup=statistics.median(out[0]), files=[statistics.median(o) for o in out[1:]])


def payload(path, dest):
    """Write the module_utils zip an AnsiballZ file carries to dest; return the module's FQN."""
    with open(path) as f:
        text = f.read()
    with open(dest, "wb") as f:
        f.write(base64.b64decode(re.search(r"^zip_data='([^']*)'", text, re.M).group(1)))
    return re.search(r"^module_fqn='([^']*)'", text, re.M).group(1)


def imports(count, paths):
    zips = []
    for i, path in enumerate(paths):
        dest = "%s.payload%d.zip" % (path, i)
        zips.append((dest, payload(path, dest)))
    basic = [[] for _item in zips]
    module = [[] for _item in zips]
    for _round in range(count):
        for i, (zpath, fqn) in enumerate(zips):
            res = subprocess.run([sys.executable, "-c", PROBE, zpath, fqn], check=True, stdout=subprocess.PIPE,
                                 universal_newlines=True)
            basic_s, module_s = res.stdout.split()
            basic[i].append(1000 * float(basic_s))
            module[i].append(1000 * float(module_s))
    return [dict(basic=statistics.median(b), module=statistics.median(m)) for b, m in zip(basic, module)]


def origin(name):
    if name.startswith(COLLECTION_PREFIX):
        parts = name.split(".")
        return ".".join(parts[:3]) if len(parts) > 3 else "ansible_collections (namespace packages)"
    if name == "ansible" or name.startswith("ansible."):
        return "ansible (core)"
    if name.startswith("libvirt"):
        return "libvirt"
    if name.startswith("lxml"):
        return "lxml"
    return "other (standard library...)"


def importtime(path):
    err = subprocess.run([sys.executable, "-X", "importtime", path], check=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, universal_newlines=True).stderr
    mods = []
    for line in err.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, cumulative, name = line[len("import time:"):].split("|")
            mods.append(dict(name=name.strip(), own=int(own) / 1000.0, cumulative=int(cumulative) / 1000.0))
    groups = {}
    for m in mods:
        groups[origin(m["name"])] = groups.get(origin(m["name"]), 0.0) + m["own"]
    return dict(total=sum(m["own"] for m in mods), groups=groups,
                by_own=sorted(mods, key=lambda m: -m["own"])[:30],
                by_cumulative=sorted(mods, key=lambda m: -m["cumulative"])[:30])


def main_profile(fqn, args):
    from ansible.module_utils import basic  # pylint: disable=import-outside-toplevel
    basic._ANSIBLE_ARGS = json.dumps(dict(ANSIBLE_MODULE_ARGS=args)).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    t0 = time.perf_counter()
    module = importlib.import_module(fqn)
    t_import = time.perf_counter() - t0
    prof = cProfile.Profile()
    out = io.StringIO()
    t0 = time.perf_counter()
    prof.enable()
    real_stdout, sys.stdout = sys.stdout, out  # the module's JSON result is not ours
    try:
        module.main()
    except SystemExit:
        pass
    finally:
        sys.stdout = real_stdout
        prof.disable()
    t_main = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    calls = {}
    for (_file, _line, func), (_cc, ncalls, own, _cum, _callers) in stats.stats.items():
        if func.startswith("<built-in method libvirtmod."):
            key = func[len("<built-in method libvirtmod."):-1]
            have = calls.get(key, (0, 0.0))
            calls[key] = (have[0] + ncalls, have[1] + own)
    text = io.StringIO()
    stats.stream = text
    stats.sort_stats("cumulative").print_stats(25)
    listing = re.sub(r"/\S*/(site-packages|ansible_collections)/", r"\1/", text.getvalue())
    return dict(import_ms=1000 * t_import, main_ms=1000 * t_main,
                libvirt_ms=1000 * sum(own for _n, own in calls.values()),
                libvirt_calls=sorted(([k, n, 1000 * own] for k, (n, own) in calls.items()), key=lambda c: -c[2]),
                result=out.getvalue()[-2000:], top=listing.strip())


def cli(argv):
    cmd = argv[0] if argv else ""
    if cmd == "runs":
        return runs(int(argv[1]), argv[2:])
    if cmd == "imports":
        return imports(int(argv[1]), argv[2:])
    if cmd == "importtime":
        return importtime(argv[1])
    if cmd == "main":
        return main_profile(argv[1], json.loads(argv[2]))
    sys.exit(__doc__)


if __name__ == "__main__":
    print(json.dumps(cli(sys.argv[1:])))
