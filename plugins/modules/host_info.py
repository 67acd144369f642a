#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_info
short_description: Facts about a libvirt/KVM hypervisor for placement decisions
version_added: 0.1.0
description:
  - Returns what a placement decision needs to know about one hypervisor, read from libvirt
    through one connection. That is the host name, libvirt and QEMU versions, the virtualization types the host
    supports (and whether KVM is usable), CPU architecture, model and topology, total and free
    memory, memory and vCPUs allocated to defined and to running domains, counts of domains by
    state, storage pools with capacity, allocation and free space, and networks.
  - Active storage pools are refreshed first, so volumes created outside libvirt are accounted for.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
  - virtops.libvirt.common.info_module
options:
  statistics:
    description:
      - Also return RV(host.statistics), the use of the hypervisor's CPUs over O(interval) seconds, its memory
        use and its load average.
      - The task then takes at least O(interval) seconds.
    type: bool
    default: false
  interval:
    description:
      - Seconds between the two samples of the host's CPU counters with O(statistics=true); a positive number.
    type: float
    default: 1
  statistics_only:
    description:
      - Return RV(host.statistics) (as with O(statistics=true)) and only RV(host.hostname) and RV(host.uri) besides.
        The facts of domains, pools, networks and capabilities are not read, and pools are not refreshed.
      - For sampling often, as the collection's C(stats) playbook does every minute, since a refresh rescans every pool.
    type: bool
    default: false
notes:
  - The load average is read from C(/proc/loadavg) when O(uri) is local (the module runs on the
    hypervisor); libvirt has no call for it, so it is null for a remote URI.
seealso:
  - ref: ansible_collections.virtops.libvirt.docsite.guide_monitoring
    description: Sampling every VM and the hosts, and feeding the numbers to Prometheus, Telegraf or Grafana.
"""

EXAMPLES = r"""
- name: Read facts about the local hypervisor
  virtops.libvirt.host_info:
  register: kvm

- name: Show free memory and whether KVM is usable
  ansible.builtin.debug:
    msg: "{{ kvm.host.hostname }}: {{ kvm.host.memory.free | human_readable }} free, kvm={{ kvm.host.kvm_usable }}"

- name: Gather facts about several hypervisors from the controller
  virtops.libvirt.host_info:
    uri: "qemu+ssh://root@{{ item }}/system"
  loop: "{{ groups['hypervisors'] }}"
  delegate_to: localhost
  register: hypervisors

- name: CPU and memory use of the hypervisor over 5 seconds, and its load average
  virtops.libvirt.host_info:
    statistics: true
    interval: 5
  register: usage

- name: Show them
  ansible.builtin.debug:
    msg: "CPU {{ usage.host.statistics.cpu_percent }} %, memory {{ usage.host.statistics.memory.used_percent }} %,
      load {{ usage.host.statistics.load_average }}"
"""

RETURN = r"""
host:
  description:
    - Facts about the hypervisor.
    - With O(statistics_only=true) only RV(host.hostname), RV(host.uri) and RV(host.statistics).
  returned: success
  type: dict
  contains:
    statistics:
      description:
        - With O(statistics=true) only. Counters of the hypervisor as libvirt reports them.
      returned: when O(statistics=true) or O(statistics_only=true)
      type: dict
      contains:
        interval:
          description: Seconds between the two CPU samples, measured.
          type: float
          sample: 1.002
        cpu_percent:
          description:
            - Percent of the time of all host CPUs that was busy (neither idle nor waiting for I/O) during
              RV(host.statistics.interval).
          type: float
          sample: 37.5
        iowait_percent:
          description: Percent of the CPU time spent waiting for I/O during RV(host.statistics.interval).
          type: float
          sample: 0.8
        load_average:
          description:
            - The 1, 5 and 15 minute load averages of the hypervisor (C(/proc/loadavg)); null for a remote O(uri).
          type: list
          elements: float
          sample: [0.52, 0.61, 0.7]
        memory:
          description:
            - Host memory in bytes (C(virNodeGetMemoryStats)); null when the driver does not report it.
              Its C(used) is what is neither free nor buffers nor page cache.
          type: dict
          sample: {total: 16777216000, free: 2147483648, buffers: 104857600, cached: 4294967296,
                   used: 10229907456, used_percent: 60.98}
    hostname:
      description: Host name reported by libvirt.
      type: str
      sample: kvm1.example.com
    uri:
      description: Canonical URI of the connection.
      type: str
      sample: qemu:///system
    uuid:
      description: Host UUID from the capabilities.
      type: str
      sample: 6e2b7f48-1c0a-4b7e-8b8e-1d2f3a4b5c6d
    driver:
      description: libvirt driver name.
      type: str
      sample: QEMU
    libvirt_version:
      description: Version of the libvirt library the daemon runs.
      type: str
      sample: 9.0.0
    hypervisor_version:
      description: Version of the hypervisor (QEMU).
      type: str
      sample: 7.2.0
    cpu:
      description: Host CPU.
      type: dict
      contains:
        arch:
          description: CPU architecture.
          type: str
          sample: x86_64
        model:
          description: CPU model name as libvirt reports it.
          type: str
          sample: Skylake-Client-IBRS
        vendor:
          description: CPU vendor.
          type: str
          sample: Intel
        count:
          description: Number of logical CPUs.
          type: int
          sample: 16
        mhz:
          description: CPU frequency in MHz.
          type: int
          sample: 2400
        numa_nodes:
          description: Number of NUMA nodes.
          type: int
          sample: 1
        sockets:
          description: Sockets, per libvirt's topology.
          type: int
          sample: 1
        cores:
          description: Cores per socket.
          type: int
          sample: 8
        threads:
          description: Threads per core.
          type: int
          sample: 2
        features:
          description: Names of CPU features beyond the model.
          type: list
          elements: str
    virt_types:
      description: Domain types the host offers for its own architecture, for example C(kvm) and C(qemu) (TCG).
      type: list
      elements: str
      sample: [kvm, qemu]
    kvm_usable:
      description: Whether libvirt can run C(kvm) domains for the host architecture.
      type: bool
      sample: true
    guest_arches:
      description: Domain types per guest architecture.
      type: dict
      sample: {x86_64: [kvm, qemu], i686: [kvm, qemu]}
    machine_types:
      description: Machine types available for the host architecture.
      type: list
      elements: str
      sample: [pc, q35]
    memory:
      description: Memory in bytes.
      type: dict
      contains:
        total:
          description: Physical memory of the host, from the kernel's counters (as C(virsh nodememstats)).
          type: int
        free:
          description: Free memory of the host (the kernel's C(MemFree)).
          type: int
        available:
          description: Free memory plus the page cache and buffers the kernel can reclaim.
          type: int
        allocated_defined:
          description: Sum of the maximum memory of all defined domains.
          type: int
        allocated_active:
          description: Sum of the current memory of running (or paused) domains.
          type: int
    vcpus:
      description: vCPU accounting.
      type: dict
      contains:
        host:
          description: Logical CPUs of the host.
          type: int
        allocated_defined:
          description: vCPUs of all defined domains.
          type: int
        allocated_active:
          description: vCPUs of running (or paused) domains.
          type: int
        overcommit_active:
          description: C(allocated_active) divided by C(host).
          type: float
    domains:
      description: Domain counts.
      type: dict
      contains:
        total:
          description: All domains libvirt knows, persistent or transient.
          type: int
        active:
          description: Domains that are running, paused or otherwise holding resources.
          type: int
        persistent:
          description: Persistent (defined) domains.
          type: int
        transient:
          description: Transient domains.
          type: int
        by_state:
          description: Count of domains per state (running, paused, shutoff, ...).
          type: dict
          sample: {running: 2, shutoff: 1, paused: 0}
        names:
          description: Names of all domains, sorted.
          type: list
          elements: str
    pools:
      description: Storage pools, sorted by name; sizes in bytes (0 for inactive pools).
      type: list
      elements: dict
      contains:
        name:
          description: Pool name.
          type: str
        type:
          description: Pool type (dir, logical, netfs...).
          type: str
        active:
          description: Whether the pool is started.
          type: bool
        state:
          description: libvirt pool state.
          type: str
        autostart:
          description: Whether the pool starts with the daemon.
          type: bool
        path:
          description: Target path of the pool.
          type: str
        capacity:
          description: Capacity in bytes.
          type: int
        allocation:
          description: Allocation in bytes.
          type: int
        available:
          description: Free space in bytes.
          type: int
        volumes:
          description: Number of volumes (null for an inactive pool).
          type: int
    networks:
      description: Virtual networks, sorted by name.
      type: list
      elements: dict
      contains:
        name:
          description: Network name.
          type: str
        active:
          description: Whether the network is started.
          type: bool
        autostart:
          description: Whether the network starts with the daemon.
          type: bool
        persistent:
          description: Whether the network is defined persistently.
          type: bool
        bridge:
          description: Bridge device name.
          type: str
        forward_mode:
          description: Forward mode (nat, route, open, bridge...) or C(isolated).
          type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._host.info import gather_host_info
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(COMMON_ARGS, statistics=dict(type="bool", default=False), interval=dict(type="float", default=1),
                           statistics_only=dict(type="bool", default=False)),
        supports_check_mode=True,
    )
    run_module(module, gather_host_info)


if __name__ == "__main__":
    main()
