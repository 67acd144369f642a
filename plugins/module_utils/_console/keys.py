# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Key names, combinations and text as Linux input key codes (``VIR_KEYCODE_SET_LINUX``), what
``dom.sendKey`` takes: :func:`parse_combination` (``ctrl+alt+f2``, ``KEY_A``, ``Enter``) and
:func:`text_to_combinations` (a string typed on a US keyboard layout: capitals and symbols with shift).

The codes are those of ``linux/input-event-codes.h``; QEMU maps them to what the guest's keyboard
sends, so the guest's own layout decides which character a key gives (text assumes US layout).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

#: libvirt accepts at most this many keys in one sendKey call (VIR_DOMAIN_SEND_KEY_MAX_KEYS)
MAX_KEYS = 16

_CODES = dict(
    ESC=1, MINUS=12, EQUAL=13, BACKSPACE=14, TAB=15, LEFTBRACE=26, RIGHTBRACE=27, ENTER=28, LEFTCTRL=29,
    SEMICOLON=39, APOSTROPHE=40, GRAVE=41, LEFTSHIFT=42, BACKSLASH=43, COMMA=51, DOT=52, SLASH=53,
    RIGHTSHIFT=54, KPASTERISK=55, LEFTALT=56, SPACE=57, CAPSLOCK=58, NUMLOCK=69, SCROLLLOCK=70,
    KP7=71, KP8=72, KP9=73, KPMINUS=74, KP4=75, KP5=76, KP6=77, KPPLUS=78, KP1=79, KP2=80, KP3=81, KP0=82,
    KPDOT=83, F11=87, F12=88, KPENTER=96, RIGHTCTRL=97, KPSLASH=98, SYSRQ=99, RIGHTALT=100, HOME=102,
    UP=103, PAGEUP=104, LEFT=105, RIGHT=106, END=107, DOWN=108, PAGEDOWN=109, INSERT=110, DELETE=111,
    PAUSE=119, LEFTMETA=125, RIGHTMETA=126, COMPOSE=127,
)
_CODES.update(("%d" % ((i + 1) % 10), 2 + i) for i in range(10))         # 1..9 -> 2..10, 0 -> 11
_CODES.update(("F%d" % (i + 1), 59 + i) for i in range(10))              # F1..F10 -> 59..68
for _row, _first in (("QWERTYUIOP", 16), ("ASDFGHJKL", 30), ("ZXCVBNM", 44)):
    _CODES.update((_c, _first + _i) for _i, _c in enumerate(_row))

#: other names people write for the same keys
ALIASES = dict(
    CTRL="LEFTCTRL", CONTROL="LEFTCTRL", ALT="LEFTALT", SHIFT="LEFTSHIFT", META="LEFTMETA", SUPER="LEFTMETA",
    WIN="LEFTMETA", ALTGR="RIGHTALT", ESCAPE="ESC", RETURN="ENTER", DEL="DELETE", INS="INSERT",
    PGUP="PAGEUP", PGDN="PAGEDOWN", PAGE_UP="PAGEUP", PAGE_DOWN="PAGEDOWN", PRINT="SYSRQ", BREAK="PAUSE",
)

# US layout: the character -> (key name, with shift)
_SHIFTED_DIGITS = ")!@#$%^&*("
_SYMBOLS = {
    " ": ("SPACE", False), "\n": ("ENTER", False), "\t": ("TAB", False),
    "-": ("MINUS", False), "_": ("MINUS", True), "=": ("EQUAL", False), "+": ("EQUAL", True),
    "[": ("LEFTBRACE", False), "{": ("LEFTBRACE", True), "]": ("RIGHTBRACE", False), "}": ("RIGHTBRACE", True),
    ";": ("SEMICOLON", False), ":": ("SEMICOLON", True), "'": ("APOSTROPHE", False), '"': ("APOSTROPHE", True),
    "`": ("GRAVE", False), "~": ("GRAVE", True), "\\": ("BACKSLASH", False), "|": ("BACKSLASH", True),
    ",": ("COMMA", False), "<": ("COMMA", True), ".": ("DOT", False), ">": ("DOT", True),
    "/": ("SLASH", False), "?": ("SLASH", True),
}


def key_code(name):
    """The Linux key code of one key name: ``KEY_A``, ``a``, ``F2``, ``ctrl``, ``Enter`` (any case)."""
    text = str(name).strip().upper()
    if text.startswith("KEY_"):
        text = text[4:]
    text = ALIASES.get(text, text)
    if text not in _CODES:
        raise InvalidInputError("%r is not a key name; use names such as KEY_A, a, F2, enter, esc, ctrl, alt, shift, "
                                "delete, up (linux/input-event-codes.h without KEY_), combined with + (ctrl+alt+f2)" % (name,))
    return _CODES[text]


def parse_combination(text):
    """``'ctrl+alt+f2'`` -> ``[29, 56, 60]``: keys pressed together, in order (modifiers first)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("a key combination must be a non-empty string such as 'ctrl+alt+f2', got %r" % (text,))
    parts = text.split("+")
    if any(not p.strip() for p in parts):
        raise InvalidInputError("%r: an empty key name between '+' signs (write 'shift+equal' for the plus key)" % text)
    codes = [key_code(p) for p in parts]
    if len(set(codes)) != len(codes):
        raise InvalidInputError("%r names a key twice" % text)
    if len(codes) > MAX_KEYS:
        raise InvalidInputError("%r presses %d keys at once; libvirt sends at most %d" % (text, len(codes), MAX_KEYS))
    return codes


def char_combination(char):
    """One character on a US keyboard -> its key codes (with LEFTSHIFT for capitals and symbols)."""
    if "a" <= char <= "z" or "0" <= char <= "9":
        return [_CODES[char.upper()]]
    if "A" <= char <= "Z":
        return [_CODES["LEFTSHIFT"], _CODES[char]]
    if char in _SHIFTED_DIGITS:
        return [_CODES["LEFTSHIFT"], _CODES[str(_SHIFTED_DIGITS.index(char))]]
    if char in _SYMBOLS:
        name, shift = _SYMBOLS[char]
        return ([_CODES["LEFTSHIFT"]] if shift else []) + [_CODES[name]]
    raise InvalidInputError("text: %r cannot be typed on a US keyboard (printable ASCII, newline and tab only); "
                            "send it with keys instead" % (char,))


def text_to_combinations(text):
    """A string -> one key combination per character (``\\n`` is Enter, ``\\t`` is Tab)."""
    return [char_combination(c) for c in str(text).replace("\r\n", "\n")]
