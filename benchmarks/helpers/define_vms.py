# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory benchmark's VMs, through the libvirt API (benchmarks/inventory.py runs this with the tools venv's
python and the built collection on PYTHONPATH).

  define_vms.py define PREFIX PER_HOST URI...    PER_HOST stopped VMs PREFIX h<i>-<nnn> on the i-th URI, each
                                                 written by the collection's own domain XML writer (the definition
                                                 the vm module makes): 64 MiB, 1 vCPU, a NIC on `default`, tags and
                                                 metadata; fails if PREFIX* domains exist already
  define_vms.py undefine PREFIX URI...           destroy and undefine every PREFIX* domain
"""

import sys

import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml


def define(conn, index, prefix, per_host):
    for n in range(1, per_host + 1):
        name = "%sh%d-%03d" % (prefix, index, n)
        model = _normalize.normalize(dict(
            memory=64, vcpus=1, interfaces=[dict(network="default")], graphics=dict(type="none"),
            tags=["bench", "h%d" % index], metadata=dict(role="bench%d" % (n % 5), owner="inventory benchmark")))
        _normalize.assign_targets(model)
        model = _normalize.with_creation_defaults(model)
        model["virt_type"] = "qemu"
        conn.defineXML(_xml.to_string(_codec_write.build_xml(name, model)))


def main(argv):
    libvirt.registerErrorHandler(lambda *args: None, None)
    action, prefix = argv[0], argv[1]
    per_host = int(argv[2]) if action == "define" else 0
    uris = argv[3:] if action == "define" else argv[2:]
    for index, uri in enumerate(uris, 1):
        conn = libvirt.open(uri)
        mine = [d for d in conn.listAllDomains(0) if d.name().startswith(prefix)]
        if action == "undefine":
            for dom in mine:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        elif mine:
            sys.exit("%s: %d domains %s* exist already" % (uri, len(mine), prefix))
        else:
            define(conn, index, prefix, per_host)
        conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
