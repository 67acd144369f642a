#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vm_info
short_description: List libvirt virtual machines with their definition, run state, disks and addresses
version_added: 0.1.0
description:
  - Returns every VM (libvirt domain) of the hypervisor, or the one named in O(name), that passes the
    filters O(name_pattern), O(state) and O(tags).
  - Each VM is described as M(virtops.libvirt.vm) returns it (the model of its saved definition), with
    what is true of it now added. This covers its state and the reason for it, the uptime, the
    snapshot count, disk sizes, the host device of each interface, the graphics ports and console of
    a running VM, and optionally the IP addresses of its interfaces and its domain XML.
  - Graphics passwords are never returned, not even in RV(vms[].xml).
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.info_module
options:
  name:
    description:
      - Only this VM. The module fails (C(error_kind=not_found)) when there is no VM of this name,
        as M(virtops.libvirt.network_info) and M(virtops.libvirt.pool_info) do.
      - To test whether a VM exists, use O(name_pattern) with the name; it gives an empty list when
        nothing matches.
    type: str
  name_pattern:
    description:
      - Only VMs whose name matches this shell pattern (V(*), V(?), V([seq])); case-sensitive.
    type: str
  state:
    description:
      - Only VMs in one of these states. V(stopped) is libvirt's C(shut off); V(shutdown) is a VM that is
        shutting down.
    type: list
    elements: str
    choices: [running, paused, stopped, shutdown, crashed, pmsuspended, nostate]
  tags:
    description: Only VMs that have all of these tags (as set by the O(virtops.libvirt.vm#module:tags) option of M(virtops.libvirt.vm)).
    type: list
    elements: str
  addresses:
    description:
      - Read the IP addresses of the interfaces of running VMs from O(ip_source).
      - A source that cannot answer for a VM does not fail the task; its reason is in
        RV(vms[].address_error).
    type: bool
    default: true
  ip_source:
    description:
      - Where addresses come from. V(lease) asks the DHCP server of libvirt's networks; it needs
        nothing in the guest and never waits for it, but knows only guests that took a lease from a
        libvirt network. V(agent) asks the guest agent (static and IPv6 addresses too). V(arp) reads the
        host's neighbour table. V(any) asks the agent, then the leases, then the neighbour table.
      - V(agent) and V(any) wait up to O(agent_timeout) seconds for each VM whose agent is connected
        but does not answer (a hung or busy guest), which is why V(lease) is the default.
    type: str
    choices: [lease, agent, arp, any]
    default: lease
  agent_timeout:
    description: How long to wait for the guest agent of one VM, in seconds (with O(ip_source=agent) or V(any)).
    type: int
    default: 5
  xml:
    description:
      - Also return the saved domain XML of each VM in RV(vms[].xml) (the running definition for a
        transient VM), read without secrets.
    type: bool
    default: false
  guest_info:
    description:
      - Also ask the QEMU guest agent of each running VM for facts from inside the guest (OS, hostname,
        timezone, logged-in users, filesystems with used and total bytes, disks, interfaces with
        addresses), in RV(vms[].guest), with one C(virDomainGetGuestInfo) call per VM.
      - A VM whose agent cannot answer (no agent channel, agent not running, VM stopped) does not
        fail the task; its RV(vms[].guest) is null and RV(vms[].guest_error) says why.
      - Off by default, so that listing VMs stays fast.
    type: bool
    default: false
    version_added: 0.2.0
  statistics:
    description:
      - Also return RV(vms[].statistics) of each running VM over O(interval) seconds. This covers CPU use in
        percent, balloon memory, and per disk and per NIC counters with their rates.
      - The numbers of all VMs of the hypervisor come from two calls of libvirt (C(virConnectGetAllDomainStats)),
        one before and one O(interval) seconds after the VMs are read, whatever the number of VMs. The task
        takes at least O(interval) seconds.
    type: bool
    default: false
  interval:
    description:
      - Seconds between the two samples with O(statistics=true); a positive number. CPU percent and rates are
        averages over the measured time, RV(vms[].statistics.interval).
    type: float
    default: 1
notes:
  - RV(vms[].uptime_seconds) is known only when the module runs on the hypervisor and O(uri) is a
    local C(qemu://) URI (it is read from the QEMU process); otherwise it is null.
seealso:
  - module: virtops.libvirt.vm
  - module: virtops.libvirt.host_info
  - ref: ansible_collections.virtops.libvirt.docsite.guide_monitoring
    description: Sampling every VM and the hosts, and feeding the numbers to Prometheus, Telegraf or Grafana.
"""

EXAMPLES = r"""
- name: All VMs of the hypervisor
  virtops.libvirt.vm_info:
  register: all_vms

- name: Names of the stopped VMs
  ansible.builtin.debug:
    msg: "{{ all_vms.vms | selectattr('state', 'equalto', 'stopped') | map(attribute='name') | list }}"

- name: Running web servers, with the addresses their guest agent reports
  virtops.libvirt.vm_info:
    name_pattern: "web*"
    state: [running]
    tags: [prod]
    ip_source: any
  register: web

- name: Their first IPv4 addresses
  ansible.builtin.debug:
    msg: "{{ web.vms | map(attribute='ip') | list }}"

- name: Does web9 exist?
  virtops.libvirt.vm_info:
    name_pattern: web9
    addresses: false
  register: web9

- name: One VM with its domain XML and its VNC port
  virtops.libvirt.vm_info:
    name: web1
    xml: true
  register: web1

- name: What runs inside the guest, through its agent (no network needed)
  virtops.libvirt.vm_info:
    name: web1
    guest_info: true
  register: inside

- name: CPU, memory, disk and network use of every running VM over 5 seconds
  virtops.libvirt.vm_info:
    state: [running]
    addresses: false
    statistics: true
    interval: 5
  register: usage

- name: The VMs that used more than 80 % of their vCPUs
  ansible.builtin.debug:
    msg: "{{ usage.vms | selectattr('statistics.cpu_percent', 'gt', 80) | map(attribute='name') | list }}"

- name: Connect a VNC viewer here
  ansible.builtin.debug:
    msg: "{{ web1.vms[0].displays[0].listen }}:{{ web1.vms[0].displays[0].port }}"
"""

RETURN = r"""
vms:
  description: The VMs that pass the filters, sorted by name; empty when none does.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Name.
      type: str
      sample: web1
    uuid:
      description: UUID.
      type: str
      sample: 4dea22b3-1d52-d8f3-2516-782e98ab3fa0
    title:
      description: Title (empty when there is none).
      type: str
    description:
      description: Description (empty when there is none).
      type: str
    state:
      description:
        - V(running), V(paused), V(stopped), or libvirt's name for rarer states (V(shutdown),
          V(crashed), V(pmsuspended), V(nostate)); the words of M(virtops.libvirt.vm).
      type: str
      sample: running
    reason:
      description:
        - Why the VM is in its state, in libvirt's words (C(virsh domstate --reason)), for example
          V(booted), V(unpaused), V(user) (paused), V(destroyed), V(shutdown), V(crashed); V(unknown)
          when libvirt does not say.
      type: str
      sample: booted
    id:
      description: libvirt's domain ID while the VM is active, else null.
      type: int
    active:
      description: Whether the VM is active (running, paused or otherwise holding a QEMU process).
      type: bool
    persistent:
      description: Whether the VM is defined (not transient).
      type: bool
    autostart:
      description: Whether libvirt starts the VM when it starts.
      type: bool
    vcpus:
      description: vCPUs of the definition.
      type: int
    max_vcpus:
      description: Most vCPUs.
      type: int
    cpu:
      description: CPU C(mode), C(model), and topology C(sockets), C(cores), C(threads) (null when not set).
      type: dict
    memory:
      description: Memory in MiB.
      type: int
    max_memory:
      description: Most memory in MiB.
      type: int
    machine:
      description: Machine type.
      type: str
      sample: pc-q35-7.2
    arch:
      description: Guest architecture.
      type: str
      sample: x86_64
    virt_type:
      description: V(kvm) or V(qemu) (libvirt's domain type).
      type: str
    firmware:
      description: V(bios) or V(uefi).
      type: str
    secure_boot:
      description: Whether UEFI Secure Boot is on.
      type: bool
    nvram_template:
      description: The UEFI variable store template, or null.
      type: str
    nvram:
      description: The UEFI variable store of the VM, or null.
      type: str
    boot:
      description: Boot devices in order (empty when per-device boot order is used).
      type: list
      elements: str
    kernel:
      description: Kernel for direct kernel boot (empty when not used).
      type: str
    initrd:
      description: Initrd for direct kernel boot (empty when not used).
      type: str
    cmdline:
      description: Kernel command line for direct kernel boot (empty when not used).
      type: str
    disks:
      description:
        - Disks with C(target), C(bus), C(path), C(pool), C(volume), C(format), C(cache), C(discard),
          C(serial), C(readonly), C(boot_order), as M(virtops.libvirt.vm) returns them.
        - C(encryption) is the disk's LUKS encryption (C(format), C(secret)), or null.
        - C(size) (the size the guest sees), C(allocation) (what is allocated) and C(physical) (the
          size of the file or device), in bytes; null when libvirt cannot tell.
      type: list
      elements: dict
      sample: [{"target": "vda", "bus": "virtio", "path": "/var/lib/libvirt/images/web1-vda.qcow2", "format": "qcow2",
                "size": 21474836480, "allocation": 1503657984, "physical": 1503657984}]
    cdroms:
      description: CD-ROM drives with C(target), C(bus), C(path) (null when empty), C(pool), C(volume), C(boot_order).
      type: list
      elements: dict
    interfaces:
      description:
        - Interfaces with C(type) (V(network), V(bridge), V(direct)), C(source), C(mode), C(model), C(mac),
          C(boot_order), as M(virtops.libvirt.vm) returns them.
        - C(filter) is the interface's network filter (C(name), C(parameters) as V(NAME=value) strings), or null.
        - C(target) is the host's device of the interface (V(vnet0)) while the VM runs; while it does not,
          the device name the definition asks for, usually null.
        - With O(addresses=true), C(addresses) lists the interface's addresses (C(type), C(address),
          C(prefix)); empty while the VM is not running or the source does not know them.
      type: list
      elements: dict
      sample: [{"type": "network", "source": "default", "model": "virtio", "mac": "52:54:00:12:34:56",
                "target": "vnet0", "addresses": [{"type": "ipv4", "address": "192.168.122.50", "prefix": 24}]}]
    graphics:
      description:
        - The graphical console of the definition, C(type), C(listen) and C(port) (V(-1) for automatic);
          never the password. The port a running VM got is in RV(vms[].displays).
      type: dict
    displays:
      description:
        - Every graphical console of the running VM, C(type), C(listen), and the C(port) and C(tls_port)
          libvirt gave it; the ports are null while the VM is not running.
      type: list
      elements: dict
      sample: [{"type": "vnc", "listen": "127.0.0.1", "port": 5900, "tls_port": null}]
    serial:
      description: The serial port of the definition, C(type) (V(pty), V(file), V(none)) and C(path).
      type: dict
    console:
      description:
        - The first console (else serial port) of the VM, C(type), C(target), C(path) (the pty while it
          runs, a file or socket path, or C(host:service)) and C(log_file); null when it has none.
      type: dict
      sample: {"type": "pty", "target": "serial", "path": "/dev/pts/3", "log_file": null}
    guest_agent:
      description: Whether the VM has a guest agent channel.
      type: bool
    rng:
      description: Whether the VM has a virtio random number generator.
      type: bool
    watchdog:
      description: The watchdog C(model) and C(action), or null.
      type: dict
    hostdevs:
      description: PCI addresses of host devices passed through.
      type: list
      elements: str
    tpm:
      description: The emulated TPM's C(model) (V(none) without one) and C(version).
      type: dict
    filesystems:
      description: virtiofs shares, each with C(source), C(target) and C(readonly).
      type: list
      elements: dict
    pinning:
      description: C(vcpus) (items with C(vcpu) and C(cpuset)) and C(emulator) (V("") when not pinned).
      type: dict
    numa:
      description: Guest NUMA cells, each with C(cpus) and C(memory) (MiB).
      type: list
      elements: dict
    hugepages:
      description: V(none), V(default) or the huge page size.
      type: str
    tags:
      description: Tags.
      type: list
      elements: str
      sample: [prod, web]
    metadata:
      description: Key/value metadata.
      type: dict
      sample: {"role": "web"}
    cpu_time_ns:
      description: CPU time the VM has used, in nanoseconds; null while it is not active.
      type: int
    uptime_seconds:
      description:
        - Seconds since the QEMU process of the VM started (reboots inside the guest do not reset it);
          null while it is not active, or when it cannot be known (see the notes).
      type: int
      sample: 86400
    snapshot_count:
      description: Number of snapshots.
      type: int
    addresses:
      description:
        - Every interface O(ip_source) reports, with its C(mac), C(name) (the guest's name with the
          agent, the host's with leases and ARP), C(addresses) and C(source); this includes interfaces
          inside the guest that are not in the definition (bridges, containers).
      returned: when O(addresses=true)
      type: list
      elements: dict
      sample: [{"mac": "52:54:00:12:34:56", "name": "vnet0", "source": "lease",
                "addresses": [{"type": "ipv4", "address": "192.168.122.50", "prefix": 24}]}]
    ip:
      description: The first IPv4 address of the VM's own interfaces that is not link-local, or null.
      returned: when O(addresses=true)
      type: str
      sample: 192.168.122.50
    address_error:
      description: Why O(ip_source) could not answer for this VM (agent not connected, no answer in time...), or null.
      returned: when O(addresses=true)
      type: str
    xml:
      description: The saved domain XML (the running one for a transient VM), without passwords.
      returned: when O(xml=true)
      type: str
    guest:
      description:
        - Facts from inside the guest through its agent, or null (then RV(vms[].guest_error) says why).
        - C(os) (C(id), C(name), C(pretty_name), C(version), C(version_id), C(kernel_release),
          C(kernel_version), C(machine)); C(hostname); C(timezone) (C(name), C(offset) in seconds);
          C(users) (C(name), C(domain), C(login_time) in ms since the epoch); C(filesystems)
          (C(mountpoint), C(name), C(fstype), C(used_bytes), C(total_bytes), C(disks)); C(disks);
          C(interfaces) (C(name), C(mac), C(addresses) with C(address), C(prefix), C(type)).
        - Keys the guest agent or libvirt version does not report are missing (interfaces need
          libvirt 8.5 or later).
      returned: when O(guest_info=true)
      type: dict
      sample:
        hostname: web1
        os: {id: debian, name: Debian GNU/Linux, version: 12 (bookworm), kernel_release: 6.1.0-50-amd64}
        timezone: {name: UTC, offset: 0}
        users: [{name: root, login_time: 1796666463900}]
        filesystems: [{mountpoint: /, fstype: ext4, used_bytes: 682790912, total_bytes: 2002124800}]
        interfaces: [{name: lo, mac: "00:00:00:00:00:00", addresses: [{address: 127.0.0.1, prefix: 8, type: ipv4}]}]
    guest_error:
      description: Why RV(vms[].guest) is null (no agent channel, agent not connected, VM not running), or null.
      returned: when O(guest_info=true)
      type: str
    statistics:
      description:
        - Run-time statistics over RV(vms[].statistics.interval) seconds (libvirt's C(virsh domstats)); null
          for a VM that is not running or paused. A counter libvirt does not report (no balloon driver in
          the guest, a CD-ROM drive without medium) is null, and so is its rate.
      returned: when O(statistics=true)
      type: dict
      contains:
        interval:
          description: Seconds between the two samples, measured.
          type: float
          sample: 1.004
        cpu_percent:
          description:
            - CPU use of the VM during the interval in percent of its vCPUs (100 means all its vCPUs were busy
              all the time), from the growth of its CPU time.
          type: float
          sample: 12.5
        cpu_time_ns:
          description: CPU time the VM has used, in nanoseconds.
          type: int
        vcpus:
          description: vCPUs the VM runs with.
          type: int
        memory:
          description:
            - Memory of the VM in bytes as the balloon reports it. C(current) and C(maximum) are known for every
              VM; C(available), C(usable) and C(unused) are what the guest's balloon driver reports; C(rss) is
              the resident memory of the QEMU process on the host.
          type: dict
          sample: {"current": 536870912, "maximum": 536870912, "available": 503316480, "usable": 352321536,
                   "unused": 301989888, "rss": 412876800}
        disks:
          description:
            - One entry per disk and CD-ROM drive (C(target)), with C(read_bytes), C(write_bytes), C(read_ops)
              and C(write_ops) since the VM started, and each as a rate over the interval
              (C(read_bytes_per_second), ...).
          type: list
          elements: dict
          sample: [{"target": "vda", "read_bytes": 104857600, "write_bytes": 52428800, "read_ops": 2500,
                    "write_ops": 900, "read_bytes_per_second": 0.0, "write_bytes_per_second": 1048576.0,
                    "read_ops_per_second": 0.0, "write_ops_per_second": 16.0}]
        interfaces:
          description:
            - One entry per NIC (C(target), the host device), with C(rx_bytes), C(tx_bytes), C(rx_packets),
              C(tx_packets), C(rx_errors), C(tx_errors), C(rx_drops) and C(tx_drops) since the VM started, and
              each as a rate over the interval (C(rx_bytes_per_second), ...).
          type: list
          elements: dict
          sample: [{"target": "vnet0", "rx_bytes": 1048576, "tx_bytes": 65536, "rx_packets": 900, "tx_packets": 300,
                    "rx_bytes_per_second": 512.0, "tx_bytes_per_second": 128.0}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.info import STATE_FILTERS, gather_vm_info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            name=dict(type="str"),
            name_pattern=dict(type="str"),
            state=dict(type="list", elements="str", choices=list(STATE_FILTERS)),
            tags=dict(type="list", elements="str"),
            addresses=dict(type="bool", default=True),
            ip_source=dict(type="str", default="lease", choices=["lease", "agent", "arp", "any"]),
            agent_timeout=dict(type="int", default=5),
            xml=dict(type="bool", default=False),
            guest_info=dict(type="bool", default=False),
            statistics=dict(type="bool", default=False),
            interval=dict(type="float", default=1),
        ),
        mutually_exclusive=[("name", "name_pattern")],
        supports_check_mode=True,
    )
    run_module(module, gather_vm_info)


if __name__ == "__main__":
    main()
