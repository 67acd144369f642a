#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vm_console
short_description: Type on a VM's keyboard, save a screenshot of its display, read its serial console
version_added: 0.2.0
description:
  - Works on the console of a libvirt VM without a network in the guest, in this order within one task
    (each part is optional, at least one is needed).
  - 1. O(keys) are pressed, one combination after the other, then O(text) is typed (a US keyboard
    layout; capitals and symbols with shift; a newline is Enter).
  - 2. O(screenshot) saves an image of the display as PNG.
  - 3. O(serial) reads the serial console (the last lines of its log file, or what a pty console
    writes during some seconds).
  - "Displays: the screenshot is QEMU's dump of the emulated video card, so it works with VNC, SPICE
    or no C(<graphics>) at all, as long as the VM has a video device (libvirt adds one with
    O(virtops.libvirt.vm#module:graphics)). A running VM without a video device (or with video model
    V(none)) fails with a clear message (C(error_kind=invalid_input)); a stopped VM fails with
    C(error_kind=conflict)."
  - Keys go to the VM's keyboard (a PS/2 or USB keyboard, which QEMU always has on x86), whether or
    not anybody watches the display.
author:
  - virtops.libvirt developers (@virtops)
extends_documentation_fragment:
  - virtops.libvirt.common
  - virtops.libvirt.common.actiongroup
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: partial
    details:
      - Keys and text are not sent, and C(changed=true) says they would be.
      - The screenshot is taken (reading the display changes nothing) and C(changed) says whether the
        file would change; the file is not written.
      - The serial console is read; O(serial.input) is not written.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
options:
  name:
    description: The VM.
    type: str
    required: true
  keys:
    description:
      - Key combinations pressed one after the other; the keys of one combination are pressed
        together, in the order given, and released after O(hold_time).
      - "A combination is key names joined by C(+): V(ctrl+alt+f2), V(KEY_ENTER), V(esc), V(shift+tab).
        Names are those of C(linux/input-event-codes.h) with or without C(KEY_), in any case, and
        C(ctrl), C(alt), C(shift), C(meta), C(altgr), C(enter)/C(return), C(esc), C(del), C(pgup), C(pgdn)."
      - At most 16 keys in one combination.
    type: list
    elements: str
  text:
    description:
      - Text typed after O(keys), one key combination per character, as on a US keyboard (the guest's
        layout decides which character a key gives). Printable ASCII, newline (Enter) and tab only.
      - The text is not hidden from logs and results; when it holds a password, give the task C(no_log).
    type: str
  hold_time:
    description: Milliseconds each combination is held down; V(0) is the hypervisor's default (QEMU 100 ms).
    type: int
    default: 0
  key_delay:
    description: Milliseconds to wait after each combination, so that slow guests miss none.
    type: int
    default: 50
  screenshot:
    description: Save an image of the VM's display.
    type: dict
    suboptions:
      path:
        description:
          - The PNG file to write, on the node the module runs on; its directory must exist.
          - Written atomically (a temporary file beside it, then renamed), and not rewritten when it
            holds the same image already.
        type: path
        required: true
      screen:
        description: The display (head) of the video card, V(0) for the first.
        type: int
        default: 0
      mode:
        description: Permissions of the file.
        type: raw
        default: '0644'
  serial:
    description:
      - Read the VM's serial console (its first C(<serial>), else its C(<console>)).
      - A serial port of type C(file), or a C(pty) with a C(<log file=...>), is read from its file on the
        node the module runs on, which must be the hypervisor host.
      - A C(pty) serial port without a log is opened through libvirt (remote URIs too); it keeps no
        history, so the result is what the guest writes during O(serial.seconds), after O(serial.input).
    type: dict
    suboptions:
      lines:
        description: The last this many lines of the log file.
        type: int
        default: 100
      offset:
        description:
          - Instead of the last lines, everything from this byte of the log file on (at most 1 MiB).
            Give RV(serial.next_offset) of an earlier read to get only what came since.
          - When the file is shorter than O(serial.offset) (it was truncated), the last lines are returned
            and RV(serial.rotated) is true.
        type: int
      seconds:
        description: How long to read a pty console.
        type: int
        default: 2
      input:
        description:
          - Text written to a pty console before reading it (for example a newline to get a login
            prompt). Not written in check mode. A file serial port cannot take input.
        type: str
notes:
  - Screenshots need QEMU's screen dump, which libvirt's C(virDomainScreenshot) streams; QEMU 7.1 and
    later give PNG, older QEMU a PPM image that the module converts to PNG.
seealso:
  - module: virtops.libvirt.vm
  - module: virtops.libvirt.vm_info
"""

EXAMPLES = r"""
- name: Switch to the second text console, log in and run a command
  virtops.libvirt.vm_console:
    name: web1
    keys: [ctrl+alt+f2]
    text: "root\n"

- name: Save what the display shows
  virtops.libvirt.vm_console:
    name: web1
    screenshot:
      path: /var/tmp/web1.png
  register: shot

- name: The last 50 lines of the serial console (a serial port of type file)
  virtops.libvirt.vm_console:
    name: web1
    serial:
      lines: 50
  register: console

- name: What came since
  virtops.libvirt.vm_console:
    name: web1
    serial:
      offset: "{{ console.serial.next_offset }}"

- name: Press Enter on a pty console and read what the guest answers for 3 s
  virtops.libvirt.vm_console:
    name: web1
    serial:
      input: "\n"
      seconds: 3
"""

RETURN = r"""
keys_sent:
  description: How many key combinations were sent (O(keys) plus one per character of O(text)); in check mode, would be.
  returned: success
  type: int
  sample: 3
screenshot:
  description: The image saved.
  returned: when O(screenshot) is given
  type: dict
  contains:
    path:
      description: The file.
      type: str
    screen:
      description: The display it shows.
      type: int
    width:
      description: Width in pixels, from the PNG header.
      type: int
      sample: 1024
    height:
      description: Height in pixels, from the PNG header.
      type: int
      sample: 768
    mime_type:
      description: What libvirt said the hypervisor sent (V(image/png); V(image/x-portable-pixmap) from an old QEMU, converted).
      type: str
    format:
      description: Always V(png).
      type: str
    bytes:
      description: Size of the PNG file.
      type: int
    sha256:
      description: SHA-256 of the PNG file.
      type: str
    changed:
      description: Whether the file was (in check mode, would be) written.
      type: bool
serial:
  description: What the serial console holds.
  returned: when O(serial) is given
  type: dict
  contains:
    source:
      description: V(file) (a log file was read) or V(pty) (the console was read for O(serial.seconds)).
      type: str
    path:
      description: The log file, or null for a pty.
      type: str
    type:
      description: The type of the serial port (V(file), V(pty)).
      type: str
    text:
      description: What was read, decoded as UTF-8 (invalid bytes replaced).
      type: str
    lines:
      description: RV(serial.text) split into lines.
      type: list
      elements: str
    offset:
      description: The byte of the file where RV(serial.text) starts.
      returned: for a file
      type: int
    next_offset:
      description: The byte after RV(serial.text); give it as O(serial.offset) to read only what comes next.
      returned: for a file
      type: int
    size:
      description: The size of the file.
      returned: for a file
      type: int
    rotated:
      description: The file was shorter than O(serial.offset).
      returned: for a file
      type: bool
    seconds:
      description: How long the pty console was read.
      returned: for a pty
      type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.codecache import for_module

for_module()  # first: the module_utils imported below are compiled once, not at every task

from ansible_collections.virtops.libvirt.plugins.module_utils._console.run import run_console
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import run_module


ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str", required=True),
    keys=dict(type="list", elements="str", no_log=False),
    text=dict(type="str"),
    hold_time=dict(type="int", default=0),
    key_delay=dict(type="int", default=50, no_log=False),
    screenshot=dict(type="dict", options=dict(
        path=dict(type="path", required=True),
        screen=dict(type="int", default=0),
        mode=dict(type="raw", default="0644"),
    )),
    serial=dict(type="dict", options=dict(
        lines=dict(type="int", default=100),
        offset=dict(type="int"),
        seconds=dict(type="int", default=2),
        input=dict(type="str"),
    )),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, run_console)


if __name__ == "__main__":
    main()
