# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: libvirt
short_description: The VMs of one or many libvirt/KVM hypervisors as inventory hosts
version_added: 0.1.0
description:
  - Connects to every hypervisor of O(uris) and of the inventory group O(hypervisor_group) at the
    same time (one thread and one libvirt connection per hypervisor) and adds every VM (libvirt
    domain), running or not, as a host.
  - Each host gets the hypervisor it is on, its state, vCPUs, memory, tags and metadata (as set by
    M(virtops.libvirt.vm)), disks, interfaces with their MAC and IP addresses, and C(ansible_host)
    set to its first address when one is known. The variables are listed under O(vars_prefix);
    O(variables) chooses some of them, for big fleets.
  - Hosts can be grouped and given more variables with O(groups), O(keyed_groups) and O(compose),
    and left out with O(filters).
  - A hypervisor that cannot be reached, or does not answer within O(timeout) seconds, is reported
    as a warning and its VMs are missing from the inventory; with O(strict=true) the inventory
    fails instead.
  - The source file must end in C(libvirt.yml) or C(libvirt.yaml).
author:
  - virtops.libvirt developers (@virtops)
requirements:
  - libvirt-python (the C(libvirt) Python binding) for the Python that runs Ansible on the controller
  - lxml for the same Python
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a source for this plugin.
    type: str
    required: true
    choices: [virtops.libvirt.libvirt]
  uris:
    description:
      - The hypervisors to list, each a libvirt URI such as V(qemu+ssh://root@kvm1/system), or a
        dictionary with the keys C(uri) and C(name) (the hypervisor's name in the inventory).
      - Without C(name), a hypervisor is named after the host of its URI (V(kvm1)), or, for a URI
        without a host (V(qemu:///system)), after the host name libvirt reports.
      - Two hypervisors must not end up with the same name.
      - URIs and names may be templates, with lookups and extra vars but no host variables, for
        example to take an SSH key file from the environment
        (V(qemu+ssh://root@kvm1/system?keyfile={{ lookup('ansible.builtin.env', 'LIBVIRT_SSH_KEY'\) }})).
    type: list
    elements: raw
    default: []
  hypervisor_group:
    description:
      - Also list every host of this inventory group as a hypervisor, named after its inventory
        host name. Its URI is the host variable O(uri_var), or else O(uri_template).
      - The group must already exist when this source is read, so the source that defines it must
        come first (C(-i hosts.yml -i vms.libvirt.yml), or file names that sort before this one in
        an inventory directory).
    type: str
  uri_var:
    description:
      - With O(hypervisor_group), the host variable that holds a hypervisor's libvirt URI. Its value
        may be a template of the host's variables.
    type: str
    default: libvirt_uri
  uri_template:
    description:
      - With O(hypervisor_group), the URI of a hypervisor that does not have the variable
        O(uri_var), as a Jinja2 template of its variables (C(inventory_hostname) included).
      - Without it, such a host's URI is C(qemu+ssh://HOST/system), where C(HOST) is its C(ansible_host) or
        else its inventory host name.
    type: str
  use_vars_plugins:
    description:
      - With O(hypervisor_group), also use what vars plugins (C(host_vars/), C(group_vars/) next to
        the inventory) give the hypervisor hosts when looking for O(uri_var) and templating
        O(uri_template). Otherwise only variables set by inventory sources count.
    type: bool
    default: false
  ip_source:
    description:
      - Where IP addresses of running VMs come from, as in M(virtops.libvirt.vm_info).
        V(lease) asks the DHCP server of libvirt's networks (needs nothing in the guest, never waits);
        V(agent) asks the guest agent; V(arp) reads the hypervisor's neighbour table;
        V(any) asks the agent, then the leases, then the neighbour table; V(none) reads no
        addresses, which is fastest.
      - V(agent) and V(any) wait up to O(agent_timeout) seconds for a VM whose agent is connected
        but does not answer (that time counts towards O(timeout)), and need a read-write connection
        (O(read_only=false)).
    type: str
    choices: [lease, agent, arp, any, none]
    default: lease
  agent_timeout:
    description: How long to wait for the guest agent of one VM, in seconds.
    type: int
    default: 5
  read_only:
    description:
      - Open read-only libvirt connections. Enough for O(ip_source=lease), V(arp) and V(none), and
        often allowed to users that may not open read-write connections.
    type: bool
    default: false
  timeout:
    description:
      - Seconds one hypervisor may take to be listed, connection included. A hypervisor that takes
        longer is reported like one that cannot be reached.
    type: int
    default: 60
  workers:
    description: How many hypervisors are listed at the same time.
    type: int
    default: 8
  host_naming:
    description:
      - How VMs are named in the inventory.
      - V(name) uses the VM name. A name that two hypervisors have (or, with O(hypervisor_group),
        that a hypervisor host has) becomes C(NAME@HYPERVISOR) for every VM of that name, with a
        warning.
      - V(name_at_hypervisor) always uses C(NAME@HYPERVISOR).
      - V(uuid) uses the VM's UUID (C(UUID@HYPERVISOR) when the same UUID is on two hypervisors,
        for example after a copy).
      - A host of the same name from an earlier inventory source (other than a hypervisor) is not
        replaced; the VM's variables are added to it.
    type: str
    choices: [name, name_at_hypervisor, uuid]
    default: name
  vars_prefix:
    description:
      - Prefix of the host variables this plugin sets (C(ansible_host) aside). With the default
        V(libvirt_) they are
        C(libvirt_hypervisor) (the hypervisor's name),
        C(libvirt_uri) (its URI, usable as O(virtops.libvirt.vm#module:uri) to manage the VM),
        C(libvirt_name), C(libvirt_uuid), C(libvirt_title), C(libvirt_description),
        C(libvirt_state) (V(running), V(stopped), V(paused), ...), C(libvirt_reason),
        C(libvirt_active), C(libvirt_persistent), C(libvirt_autostart),
        C(libvirt_vcpus), C(libvirt_max_vcpus), C(libvirt_memory) and C(libvirt_max_memory) (MiB),
        C(libvirt_arch), C(libvirt_machine), C(libvirt_virt_type), C(libvirt_firmware),
        C(libvirt_guest_agent) (whether the VM has a guest agent channel),
        C(libvirt_tags) (list), C(libvirt_metadata) (dict),
        C(libvirt_disks) (C(target), C(bus), C(path), C(pool), C(volume), C(format)),
        C(libvirt_interfaces) (C(type), C(source), C(model), C(mac), C(addresses)),
        C(libvirt_macs), C(libvirt_ip_addresses), C(libvirt_ip) (the first IPv4 address) and
        C(libvirt_address_error) (why O(ip_source) could not answer for a running VM).
      - The values mean what the same keys of M(virtops.libvirt.vm_info)'s RV(virtops.libvirt.vm_info#module:vms) mean.
      - Letters, digits and underscores, not starting with a digit; may be empty.
    type: str
    default: libvirt_
  variables:
    description:
      - Only read and set these of the variables listed under O(vars_prefix), named without the
        prefix, and C(ansible_host) if it is listed (for example V([hypervisor, state, ansible_host])).
        Without this option every variable is set; with it, no other.
      - Ansible's own work for each value set (it checks each one, and again when it prints or uses
        the host's variables) is most of the time a big fleet takes; fewer variables cost less.
        Without any variable of the definition (C(title) ... C(interfaces), C(macs), the addresses
        and C(ansible_host)) no VM definition is read at all (one call per hypervisor lists every
        VM and its state), and without C(persistent) or C(autostart) their lists are not read.
      - O(filters), O(compose), O(groups) and O(keyed_groups) see only the variables that are set.
      - With O(cache=true), a cache made with fewer variables than are now asked for is refreshed.
    type: list
    elements: str
  ansible_host_networks:
    description:
      - Networks (CIDR) in order of preference from which C(ansible_host) is taken, for VMs with
        several addresses.
      - Without them, C(ansible_host) is the VM's first IPv4 address that is not link-local, else its
        first global IPv6 address. With them, it is the first address of the VM in the first
        network that has one, and is not set when none has.
    type: list
    elements: str
    default: []
  guest_agent_connection:
    description:
      - Hand VMs that have a guest agent channel (C(org.qemu.guest_agent.0)) to the connection plugin
        P(virtops.libvirt.guest_agent#connection), which runs
        tasks inside them through the QEMU guest agent, without network or SSH.
      - Such a VM gets C(ansible_connection=virtops.libvirt.guest_agent), C(ansible_libvirt_uri) (its
        hypervisor's URI) and C(ansible_libvirt_vm) (its name). O(compose) can still change them.
      - V(never) sets none of them. V(without_address) sets them for VMs with an agent channel and no
        address for C(ansible_host) (see O(ip_source) and O(ansible_host_networks); a stopped VM has none),
        so that VMs with an address keep the default connection (SSH). V(always) sets them for every VM
        with an agent channel.
      - Whether a VM has the channel is the variable C(guest_agent) (with O(vars_prefix)). With O(variables),
        what this option needs is read even when not listed, and set only when listed.
    type: str
    choices: [never, without_address, always]
    default: never
    version_added: 0.2.0
  filters:
    description:
      - Which VMs become hosts. Each item is a dictionary with one key, C(include) or C(exclude),
        whose value is a Jinja2 conditional (or a boolean) on the host's variables and
        C(inventory_hostname). The first item whose conditional is true decides; a VM that no item
        decides is included.
      - Filters are applied before O(compose), O(groups) and O(keyed_groups).
    type: list
    elements: dict
    default: []
notes:
  - Works as an inventory source of AWX or Ansible Automation Platform; see
    R(the AWX guide, ansible_collections.virtops.libvirt.docsite.guide_awx) in the collection's docs.
  - With O(cache=true), the VMs read from the hypervisors are cached (see the inventory cache
    options); O(filters), O(compose), O(groups), O(keyed_groups) and the host naming are applied
    to the cached data on every run. Warnings about hypervisors that could not be reached are
    repeated from the cache.
  - With O(host_naming=name), a VM whose name is also the name of a hypervisor host of
    O(hypervisor_group) is named C(NAME@HYPERVISOR) so that the hypervisor's variables are not
    changed.
seealso:
  - module: virtops.libvirt.vm_info
  - module: virtops.libvirt.host_info
  - plugin: virtops.libvirt.placement
    plugin_type: filter
"""

EXAMPLES = r"""
# vms.libvirt.yml: every VM of three hypervisors, grouped by hypervisor, state and tag
plugin: virtops.libvirt.libvirt
uris:
  - qemu+ssh://root@kvm1.example.com/system
  - qemu+ssh://root@kvm2.example.com/system
  - uri: qemu+tls://10.0.0.13/system
    name: kvm3
keyed_groups:
  - key: libvirt_hypervisor
    prefix: hypervisor
  - key: libvirt_state
    prefix: state
  - key: libvirt_tags
    prefix: tag
  - key: libvirt_metadata
    prefix: meta
---
# running.libvirt.yml: only running VMs of the hosts of group 'hypervisors' (defined by an
# inventory source read before this one), reached over SSH as the user 'deploy'
plugin: virtops.libvirt.libvirt
hypervisor_group: hypervisors
uri_template: "qemu+ssh://deploy@{{ ansible_host | default(inventory_hostname) }}/system?no_tty=1"
filters:
  - include: libvirt_state == 'running'
  - exclude: true
ip_source: any
ansible_host_networks: [10.20.0.0/16]
groups:
  webservers: "'web' in libvirt_tags"
compose:
  ansible_user: libvirt_metadata.user | default('debian')
---
# isolated.libvirt.yml: VMs without an address are reached through their guest agent
plugin: virtops.libvirt.libvirt
uris: [qemu+ssh://root@kvm1.example.com/system]
ip_source: agent
guest_agent_connection: without_address
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
---
# cached.libvirt.yml: cache the listing for 10 minutes in JSON files
plugin: virtops.libvirt.libvirt
uris: [qemu:///system]
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /var/cache/ansible/libvirt-inventory
cache_timeout: 600
"""

import re

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.helpers import get_group_vars
from ansible.module_utils.common.collections import is_sequence
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars

from ansible_collections.virtops.libvirt.plugins.module_utils._cluster import inventory as _inventory
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.xml import HAS_LXML, LXML_IMPORT_ERROR

try:
    from ansible.vars.plugins import get_vars_from_inventory_sources
except ImportError:  # pragma: no cover - very old ansible-core
    get_vars_from_inventory_sources = None

try:
    from ansible.template import trust_as_template  # noqa: F401 pylint: disable=unused-import
except ImportError:  # ansible-core < 2.19 templates any string it is given: mark what comes from VMs as unsafe
    from ansible.utils.unsafe_proxy import wrap_var as _unsafe
else:  # ansible-core >= 2.19 never templates what a plugin sets (it is not trusted)

    def _unsafe(value):
        return value


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "virtops.libvirt.libvirt"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(("libvirt.yml", "libvirt.yaml"))

    # ------------------------------------------------------------------------- parse ---

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        self._require_libraries()
        self._check_prefix()
        filters = self._filters()
        networks = self._networks()
        options = self._listing_options()
        chosen = options["variables"]
        options = self._agent_options(options)
        hypervisors = self._hypervisors()

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        results = None
        if use_cache:
            try:
                results = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if results is not None and not all(_inventory.covers(result, options) for result in results):
            results, update_cache = None, True  # cached with fewer O(variables) than asked now
        if results is None:
            results = _inventory.gather(hypervisors, options, workers=self.get_option("workers"),
                                        timeout=self.get_option("timeout"))
        if update_cache:
            self._cache[cache_key] = results

        self._report(results)
        reserved = set(h["name"] for h in hypervisors if h.get("from_group"))
        self._populate(results, reserved, filters, networks, chosen)

    # ---------------------------------------------------------------------- options ---

    @staticmethod
    def _require_libraries():
        if not HAS_LIBVIRT:
            raise AnsibleError(
                "The virtops.libvirt.libvirt inventory plugin needs the libvirt Python binding on the controller: "
                "install 'libvirt-python' from PyPI (or python3-libvirt from your distribution) for the Python that "
                "runs Ansible. Import error: %s" % LIBVIRT_IMPORT_ERROR.strip().splitlines()[-1])
        if not HAS_LXML:
            raise AnsibleError(
                "The virtops.libvirt.libvirt inventory plugin needs lxml on the controller: install 'lxml' from "
                "PyPI (or python3-lxml) for the Python that runs Ansible. Import error: %s"
                % LXML_IMPORT_ERROR.strip().splitlines()[-1])

    def _listing_options(self):
        options = dict(
            ip_source=self.get_option("ip_source"),
            agent_timeout=self.get_option("agent_timeout"),
            read_only=self.get_option("read_only"),
            variables=self.get_option("variables"),
        )
        try:
            options = _inventory.check_options(options)
        except VirtopsError as exc:
            raise AnsibleParserError(exc.msg)
        for name in ("timeout", "workers"):
            if self.get_option(name) < 1:
                raise AnsibleParserError("%s: must be at least 1, got %s" % (name, self.get_option(name)))
        return options

    def _agent_options(self, options):
        try:
            return _inventory.with_agent_needs(options, self.get_option("guest_agent_connection"))
        except VirtopsError as exc:
            raise AnsibleParserError(exc.msg)

    def _check_prefix(self):
        prefix = self.get_option("vars_prefix") or ""
        if prefix and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", prefix):
            raise AnsibleParserError("vars_prefix: %r must be letters, digits and underscores, not starting with a digit"
                                     % prefix)

    def _filters(self):
        try:
            return _inventory.check_filters(self.get_option("filters"))
        except VirtopsError as exc:
            raise AnsibleParserError(exc.msg)

    def _networks(self):
        try:
            return _inventory.check_networks(self.get_option("ansible_host_networks"))
        except VirtopsError as exc:
            raise AnsibleParserError(exc.msg)

    def _hypervisors(self):
        """``[{name, uri, from_group}]``: O(uris), then the hosts of O(hypervisor_group)."""
        out = []
        uris = self.get_option("uris") or []
        if not is_sequence(uris):
            raise AnsibleParserError("uris: must be a list")
        for index, item in enumerate(uris):
            what = "uris[%d]" % index
            try:
                item = _inventory.check_uris_item(item, what)
            except VirtopsError as exc:
                raise AnsibleParserError(exc.msg)
            name = item.get("name")
            uri = self._template_option(item["uri"], "%s.uri" % what)
            name = self._template_option(name, "%s.name" % what) if name else None
            out.append(dict(uri=uri, name=name, from_group=False))
        group = self.get_option("hypervisor_group")
        if group:
            out.extend(self._group_hypervisors(group))
        if not out:
            raise AnsibleParserError("no hypervisor to list: give uris, or hypervisor_group with a group that has hosts")
        seen = {}
        for item in out:
            for key in ("uri", "name"):
                value = item[key]
                if value is None:
                    continue
                if (key, value) in seen:
                    raise AnsibleParserError("the hypervisor %s %r is given twice" % (key, value))
                seen[(key, value)] = True
        return out

    def _template_option(self, value, what):
        """A URI or name of O(uris), templated (lookups and extra vars allowed, no host variables)."""
        self.templar.available_variables = dict(getattr(self, "_vars", None) or {})
        try:
            value = self.templar.template(value)
        except Exception as exc:  # pylint: disable=broad-except
            raise AnsibleParserError("%s: %s" % (what, to_native(exc)))
        if not isinstance(value, str) or not value.strip():
            raise AnsibleParserError("%s: must be a non-empty string, got %r" % (what, value))
        return to_native(value).strip()

    def _group_hypervisors(self, group):
        if group not in self.inventory.groups:
            raise AnsibleParserError(
                "hypervisor_group: there is no group %r in the inventory read so far; the inventory source that "
                "defines it must come before this one" % group)
        uri_var = self.get_option("uri_var")
        template = self.get_option("uri_template")
        out = []
        for host in sorted(self.inventory.groups[group].get_hosts(), key=lambda h: h.name):
            variables = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
            if self.get_option("use_vars_plugins") and get_vars_from_inventory_sources is not None:
                extra = get_vars_from_inventory_sources(self.loader, self.inventory.processed_sources, [host], "all")
                variables = combine_vars(variables, extra)
            self.templar.available_variables = variables
            try:
                if uri_var and variables.get(uri_var) is not None:
                    uri = self.templar.template(variables[uri_var])
                elif template:
                    uri = self.templar.template(template)
                else:
                    uri = "qemu+ssh://%s/system" % self.templar.template(variables.get("ansible_host") or host.name)
            except Exception as exc:  # pylint: disable=broad-except
                raise AnsibleParserError("hypervisor_group: cannot make the URI of %s: %s" % (host.name, to_native(exc)))
            if not isinstance(uri, str) or not uri.strip():
                raise AnsibleParserError("hypervisor_group: the URI of %s is empty or not a string: %r" % (host.name, uri))
            out.append(dict(uri=to_native(uri).strip(), name=host.name, from_group=True))
        return out

    # --------------------------------------------------------------------- results ---

    def _report(self, results):
        try:
            problems = _inventory.problems(results)
        except VirtopsError as exc:
            raise AnsibleParserError(exc.msg)
        if problems and self.get_option("strict"):
            raise AnsibleParserError("; ".join(problems))
        for problem in problems:
            self.display.warning(problem)

    def _host_names(self, results, reserved):
        """``{(hypervisor, uuid): inventory host name}`` after O(host_naming)."""
        names, collided = _inventory.host_names(results, self.get_option("host_naming"), reserved)
        for base in sorted(collided):
            self.display.warning("the VM name %r is used more than once (several hypervisors, or a hypervisor host): "
                                 "its hosts are %s" % (base, ", ".join(sorted(collided[base]))))
        return names

    def _variables(self, result, vm, networks, chosen=None):
        """The host variables of ``vm``: all, or those of O(variables) (``chosen``)."""
        prefix = self.get_option("vars_prefix") or ""
        own = dict(vm, hypervisor=result["name"], uri=result["uri"])
        variables = dict((prefix + key, value) for key, value in own.items() if chosen is None or key in chosen)
        address = _inventory.first_address(vm, networks) if chosen is None or "ansible_host" in chosen else None
        if address:
            variables["ansible_host"] = address
        variables.update(_inventory.agent_connection(vm, result["uri"], self.get_option("guest_agent_connection"),
                                                     networks))
        return _unsafe(variables)

    def _condition(self, condition, variables, host):
        if isinstance(condition, bool):
            return condition
        self.templar.available_variables = variables
        try:
            evaluate = getattr(self.templar, "evaluate_conditional", None)
            if evaluate is not None:  # ansible-core >= 2.19
                return bool(evaluate(condition))
            return boolean(self.templar.template("{%% if %s %%} True {%% else %%} False {%% endif %%}" % condition))
        except Exception as exc:  # pylint: disable=broad-except
            raise AnsibleParserError("filters: cannot evaluate %r for host %s: %s" % (condition, host, to_native(exc)))

    def _keep(self, filters, variables, host):
        context = dict(variables, inventory_hostname=host, inventory_hostname_short=host.split(".")[0])
        for kind, condition in filters:
            if self._condition(condition, context, host):
                return kind == "include"
        return True

    def _populate(self, results, reserved, filters, networks, chosen):
        names = self._host_names(results, reserved)
        strict = self.get_option("strict")
        compose, groups, keyed_groups = (self.get_option(k) for k in ("compose", "groups", "keyed_groups"))
        for result in results:
            for vm in result["vms"]:
                host = names[(result["name"], vm["uuid"])]
                variables = self._variables(result, vm, networks, chosen)
                if filters and not self._keep(filters, variables, host):
                    continue
                self.inventory.add_host(host)
                for key, value in variables.items():  # ansible-core's cost is per value set
                    self.inventory.set_variable(host, key, value)
                if not (compose or groups or keyed_groups):
                    continue  # templating costs per host: only when asked for
                host_vars = self.inventory.get_host(host).get_vars()
                self._set_composite_vars(compose, host_vars, host, strict=strict)
                self._add_host_to_composed_groups(groups, host_vars, host, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, host_vars, host, strict=strict)
