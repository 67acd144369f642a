# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The trust model of disk images (plugins/module_utils/_storage/trust.py, _record.py), for the modules
    # through which images enter or are attached: volume, vm, vm_import.
    DOCUMENTATION = r"""
options: {}
notes:
  - "Image trust: what an administrator writes in a playbook is trusted (paths, pool and volume names,
    declared formats), and so are the records this collection keeps of the volumes it made. The
    content of images and archives is not trusted (downloads, files, archive members, and volumes a
    guest has written to): an image header can name host files that QEMU, a privileged process, would
    then open."
  - "Every image that enters (M(virtops.libvirt.volume) with O(virtops.libvirt.volume#module:source),
    O(virtops.libvirt.volume#module:clone_from) or O(virtops.libvirt.volume#module:backing_volume);
    M(virtops.libvirt.vm_import)) or is attached (M(virtops.libvirt.vm) disks given by volume or by path)
    passes one image-trust check. Refused are: backing files (only the base of a linked clone and the
    volumes of a VM may have them, and then each link must be a plain file name with an explicit
    backing format, must be a volume of an active storage pool, and is checked in turn, up to 16 links;
    C(json:) and protocol names such as C(nbd:) or C(http:) are refused); qcow2 external data files;
    VMDK extents in other files; encryption; formats other than raw, qcow2, vmdk, vdi, vhdx, vpc and
    qed; content that is not the declared format (a file declared raw whose first bytes are a qcow2,
    qed, vmdk, vdi, vhdx, vpc or LUKS header is refused); a virtual size above 16 TiB (the largest file
    ext4 holds with 4 KiB blocks)."
  - "C(qemu-img) reads an image only with an explicit format (the declared or recorded one, or the one
    its first bytes show for a file named without a format), under resource limits (C(prlimit): 1 GiB
    of memory, 30 s of CPU), and never follows a backing chain by itself."
  - "Formats are recorded, never probed again: each volume these modules create or fill carries a
    record in the extended attribute C(user.virtops) of its file (its format; for a filled volume also
    the source, without user, password and query of an URL, the checksum, and whether the fill
    completed). A disk's format comes from the declaration, else the VM's own definition, else the
    record, else libvirt's report, which is then checked. A volume recorded raw stays raw for every
    later use, whatever libvirt probes in it, and declaring another format than the recorded one is
    refused."
  - "A record is kept only where the module sees the volume's file: a local URI (the task runs on the
    hypervisor) and a file system with user extended attributes (ext4, xfs, btrfs; not block-device
    pools). Elsewhere (remote URIs, block devices) nothing is recorded and the check relies on libvirt's
    report, which shows neither qcow2 external data files nor VMDK extents and fills in backing formats
    by probing: for images you do not trust, run the task on the hypervisor with a local URI."
"""
