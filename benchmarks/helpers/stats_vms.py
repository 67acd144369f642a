# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The vm_stats benchmark's VMs, through the libvirt API (benchmarks/vm_stats.py runs this with the tools venv's
python and the built collection on PYTHONPATH).

  stats_vms.py start PREFIX N URI VIRT_TYPE DISK_DIR NETWORK   N running BIOS-only VMs PREFIX<nnn> (no OS: SeaBIOS
                                                              finds nothing to boot and waits), each written by the
                                                              collection's own domain XML writer: 32 MiB, 1 vCPU, a
                                                              16 MiB raw disk DISK_DIR/PREFIX<nnn>.img (made here,
                                                              sparse) and a NIC on NETWORK; fails if PREFIX* exist
  stats_vms.py remove PREFIX URI                              destroy and undefine every PREFIX* domain
"""

import os
import sys

import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml


def start(conn, prefix, count, virt_type, disk_dir, network):
    for n in range(1, count + 1):
        name = "%s%03d" % (prefix, n)
        disk = os.path.join(disk_dir, name + ".img")
        with open(disk, "wb") as f:
            f.truncate(16 * 1024 * 1024)
        model = _normalize.normalize(dict(
            memory=32, vcpus=1, disks=[dict(path=disk, format="raw")], interfaces=[dict(network=network)],
            graphics=dict(type="none"), guest_agent=False, rng=False))
        _normalize.assign_targets(model)
        model = _normalize.with_creation_defaults(model)
        model["virt_type"] = virt_type
        conn.defineXML(_xml.to_string(_codec_write.build_xml(name, model))).create()


def main(argv):
    libvirt.registerErrorHandler(lambda *args: None, None)
    action, prefix = argv[0], argv[1]
    uri = argv[3] if action == "start" else argv[2]
    conn = libvirt.open(uri)
    mine = [d for d in conn.listAllDomains(0) if d.name().startswith(prefix)]
    if action == "remove":
        for dom in mine:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    elif mine:
        sys.exit("%s: %d domains %s* exist already" % (uri, len(mine), prefix))
    else:
        start(conn, prefix, int(argv[2]), argv[4], argv[5], argv[6])
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
