# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each option declared once: a table of :class:`Option` per resource, from which the module's
argument spec, the defaults other code needs (``vm_import``, roles) and the groups of model keys
(which options are compared, which apply live) are all derived.

``meta`` is free-form and per resource (``model=True``, ``live=True``, ``definition=True``...);
:func:`names` selects by it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

_SPEC_KEYS = ("type", "default", "choices", "elements", "aliases", "no_log", "required")


class Option:
    """One option: what AnsibleModule needs to know of it, and what the resource code needs (``meta``)."""

    __slots__ = ("name", "type", "default", "choices", "elements", "aliases", "no_log", "required",
                 "suboptions", "meta")

    def __init__(self, name, type="str", default=None, choices=None, elements=None, aliases=None,  # pylint: disable=redefined-builtin
                 no_log=None, required=False, suboptions=None, **meta):
        self.name = name
        self.type = type
        self.default = default
        self.choices = list(choices) if choices is not None else None
        self.elements = elements
        self.aliases = list(aliases) if aliases else None
        self.no_log = no_log
        self.required = required
        self.suboptions = list(suboptions) if suboptions is not None else None
        self.meta = meta

    def spec(self):
        """This option's entry of an AnsibleModule argument spec (only the keys that are set)."""
        entry = {}
        for key in _SPEC_KEYS:
            value = getattr(self, key)
            if value is None or (key == "required" and not value):
                continue
            entry[key] = list(value) if isinstance(value, list) else value
        if self.suboptions is not None:
            entry["options"] = argument_spec(self.suboptions)
        return entry

    def __repr__(self):
        return "Option(%r)" % self.name


def argument_spec(options, **extra):
    """The AnsibleModule ``argument_spec`` of a table; ``extra`` adds entries declared elsewhere
    (options a doc fragment shares, such as the connection options)."""
    spec = dict((option.name, option.spec()) for option in options)
    for name, entry in extra.items():
        if name in spec:
            raise ValueError("option %r is declared twice" % name)
        spec[name] = entry
    return spec


def defaults(options):
    """``{name: default}`` of the options that have a default."""
    return dict((o.name, o.default) for o in options if o.default is not None)


def names(options, **meta_filter):
    """The names of the options whose ``meta`` has every given key with the given value, in table order."""
    return tuple(o.name for o in options if all(o.meta.get(k) == v for k, v in meta_filter.items()))


def find(options, name):
    """The option called ``name`` (KeyError when the table has none)."""
    for option in options:
        if option.name == name:
            return option
    raise KeyError(name)
