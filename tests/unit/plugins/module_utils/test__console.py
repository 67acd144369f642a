# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_console``: key names and text as key codes, PNG headers and PPM conversion, screenshots and
keys against libvirt's test driver (its screenshot is a real PNG, its sendKey accepts Linux key
codes), serial log files.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import zlib

import libvirt
import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.virtops.libvirt.plugins.module_utils._console import keys as _keys
from ansible_collections.virtops.libvirt.plugins.module_utils._console import screen as _screen
from ansible_collections.virtops.libvirt.plugins.module_utils._console import serial as _serial
from ansible_collections.virtops.libvirt.plugins.module_utils._console.run import run_console
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.modules.vm_console import ARGUMENT_SPEC

SHIFT, CTRL, ALT = 42, 29, 56


# -------------------------------------------------------------------------------- keys ---

@pytest.mark.parametrize("text, codes", [
    ("KEY_A", [30]),
    ("a", [30]),
    ("enter", [28]),
    ("Return", [28]),
    ("ctrl+alt+f2", [CTRL, ALT, 60]),
    ("CTRL+ALT+DELETE", [CTRL, ALT, 111]),
    ("ctrl+alt+del", [CTRL, ALT, 111]),
    ("shift+tab", [SHIFT, 15]),
    ("KEY_F10", [68]),
    ("f12", [88]),
    ("0", [11]),
    ("1", [2]),
    ("meta+l", [125, 38]),
    ("esc", [1]),
    (" KEY_Z ", [44]),
])
def test_parse_combination(text, codes):
    assert _keys.parse_combination(text) == codes


@pytest.mark.parametrize("text, message", [
    ("ctrl+", "an empty key name between"),
    ("", "must be a non-empty string"),
    ("KEY_NOPE", "'KEY_NOPE' is not a key name"),
    ("ctrl+ctrl", "names a key twice"),
    ("+".join("abcdefghijklmnopq"), "presses 17 keys at once; libvirt sends at most 16"),
])
def test_parse_combination_errors(text, message):
    with pytest.raises(InvalidInputError, match=message):
        _keys.parse_combination(text)


def test_text_as_us_keyboard_key_codes():
    assert _keys.text_to_combinations("aZ9 _/\n") == [
        [30], [SHIFT, 44], [10], [57], [SHIFT, 12], [53], [28]]
    assert _keys.text_to_combinations("!@(") == [[SHIFT, 2], [SHIFT, 3], [SHIFT, 10]]
    assert _keys.text_to_combinations("a\r\nb") == [[30], [28], [48]]


def test_every_printable_ascii_character_can_be_typed():
    for code in range(32, 127):
        combo = _keys.char_combination(chr(code))
        assert 1 <= len(combo) <= 2 and all(isinstance(c, int) for c in combo)


def test_text_refuses_what_a_us_keyboard_cannot_type():
    with pytest.raises(InvalidInputError, match="'é' cannot be typed on a US keyboard"):
        _keys.text_to_combinations("café")


# ------------------------------------------------------------------------------- images ---

def decode_png(data):
    """Width, height and rows of an 8-bit RGB PNG with filter 0 (what ppm_to_png writes), with zlib only."""
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height = header[:2]
    raw = zlib.decompress(idat)
    row = width * 3 + 1
    return width, height, [raw[y * row + 1:(y + 1) * row] for y in range(height)]


def test_ppm_to_png_keeps_every_pixel():
    pixels = bytes(range(256)) * 3 + bytes(range(48))  # 3 x 88 pixels of 3 bytes = 792 bytes
    ppm = b"P6\n# made by a test\n88 3\n255\n" + pixels[:792]
    png = _screen.ppm_to_png(ppm)
    assert _screen.png_size(png) == (88, 3)
    width, height, rows = decode_png(png)
    assert (width, height) == (88, 3) and b"".join(rows) == pixels[:792]


@pytest.mark.parametrize("data, message", [
    (b"P6 2 2 255\n" + b"\0" * 5, "truncated PPM image \\(5 of 12 bytes\\)"),
    (b"P3 2 2 255\n0 0 0", "a PPM image of a kind this module cannot convert \\(P3"),
    (b"P6 2", "truncated PPM"),
])
def test_ppm_errors(data, message):
    with pytest.raises(BackendError, match=message):
        _screen.ppm_to_png(data)


def test_png_size_refuses_what_is_not_png():
    with pytest.raises(BackendError, match="not a PNG image"):
        _screen.png_size(b"GIF89a" + b"\0" * 40)


@pytest.mark.parametrize("devices, expected", [
    ("<video><model type='cirrus'/></video>", True),
    ("<video><model type='none'/></video>", False),
    ("<graphics type='vnc'/>", False),
    ("", False),
])
def test_has_display(devices, expected):
    assert _screen.has_display(_xml.parse("<domain><devices>%s</devices></domain>" % devices)) is expected


# ------------------------------------------------------------- against the test driver ---

DOMAIN_XML = """
<domain type='test'>
  <name>u-console</name>
  <memory unit='MiB'>64</memory>
  <os><type>hvm</type></os>
  <devices>%s</devices>
</domain>
"""


def console(conn, check=False, **given):
    result = ArgumentSpecValidator(ARGUMENT_SPEC).validate(dict(given, key_delay=given.get("key_delay", 0)))
    assert not result.error_messages, result.error_messages
    return run_console(Context(conn=conn, params=result.validated_parameters, check_mode=check))


@pytest.fixture
def make_dom(test_conn):
    made = []

    def make(devices="", running=True):
        dom = test_conn.defineXML(DOMAIN_XML % devices)
        made.append(dom)
        if running:
            dom.create()
        return dom
    yield make
    for dom in made:
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def test_screenshot_of_the_test_driver_is_a_png_written_once(test_conn, make_dom, tmp_path):
    make_dom("<video><model type='vga'/></video>")
    path = str(tmp_path / "shot.png")
    first = console(test_conn, check=True, name="u-console", screenshot=dict(path=path))
    assert first["changed"] and not os.path.exists(path)  # check mode: taken, not written
    shot = first["screenshot"]
    assert shot["mime_type"] == "image/png" and shot["width"] > 0 and shot["height"] > 0
    second = console(test_conn, name="u-console", screenshot=dict(path=path, mode="0640"))
    assert second["changed"] and second["screenshot"]["sha256"] == shot["sha256"]
    with open(path, "rb") as handle:
        assert _screen.png_size(handle.read()) == (shot["width"], shot["height"])
    assert os.stat(path).st_mode & 0o777 == 0o640
    for check in (True, False):  # the same image: nothing to write
        assert not console(test_conn, check=check, name="u-console", screenshot=dict(path=path))["changed"]
    assert sorted(os.listdir(str(tmp_path))) == ["shot.png"]  # no temporary file left


def test_screenshot_of_a_stopped_vm_or_into_a_missing_directory(test_conn, make_dom, tmp_path):
    make_dom(running=False)
    with pytest.raises(ConflictError, match="VM 'u-console' is not running"):
        console(test_conn, name="u-console", screenshot=dict(path=str(tmp_path / "x.png")))
    with pytest.raises(InvalidInputError, match="the directory .*/nowhere does not exist"):
        console(test_conn, name="u-console", screenshot=dict(path=str(tmp_path / "nowhere" / "x.png")))


def test_keys_and_text_are_sent_and_check_mode_sends_nothing(test_conn, make_dom, monkeypatch):
    dom = make_dom()
    sent = []
    real = libvirt.virDomain.sendKey

    def spy(self, codeset, holdtime, keycodes, nkeycodes, flags):
        sent.append((codeset, holdtime, list(keycodes)))
        return real(self, codeset, holdtime, keycodes, nkeycodes, flags)  # the test driver checks the codes
    monkeypatch.setattr(libvirt.virDomain, "sendKey", spy)
    check = console(test_conn, check=True, name="u-console", keys=["ctrl+alt+f2"], text="Hi\n")
    assert check == dict(changed=True, keys_sent=4) and sent == []
    done = console(test_conn, name="u-console", keys=["ctrl+alt+f2"], text="Hi\n", hold_time=30)
    assert done == dict(changed=True, keys_sent=4)
    assert sent == [(libvirt.VIR_KEYCODE_SET_LINUX, 30, codes) for codes in ([CTRL, ALT, 60], [SHIFT, 35], [23], [28])]
    dom.destroy()
    with pytest.raises(ConflictError, match="keys go to a running VM's keyboard"):
        console(test_conn, name="u-console", keys=["a"])


def test_nothing_to_do_and_missing_vm(test_conn, make_dom):
    make_dom()
    with pytest.raises(InvalidInputError, match="give keys, text, screenshot or serial"):
        console(test_conn, name="u-console")
    with pytest.raises(NotFoundError):
        console(test_conn, name="u-console-nope", keys=["a"])
    with pytest.raises(InvalidInputError, match="hold_time: must be a whole number of milliseconds"):
        console(test_conn, name="u-console", keys=["a"], hold_time=-1)


# ------------------------------------------------------------------------------- serial ---

def write_log(path, lines):
    with open(path, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))


def test_serial_file_tail_offset_and_rotation(test_conn, make_dom, tmp_path):
    path = str(tmp_path / "serial.log")
    write_log(path, ["[    0.000000] Linux version 6.1.0", "booting", "", "debian login: "])
    make_dom("<serial type='file'><source path='%s'/><target port='0'/></serial>" % path)
    first = console(test_conn, name="u-console", serial=dict(lines=2))
    assert not first["changed"]
    serial = first["serial"]
    assert (serial["source"], serial["type"], serial["path"]) == ("file", "file", path)
    assert serial["lines"] == ["", "debian login: "] and serial["next_offset"] == os.path.getsize(path)
    with open(path, "a") as handle:
        handle.write("more\n")
    since = console(test_conn, name="u-console", serial=dict(offset=serial["next_offset"]))["serial"]
    assert since["lines"] == ["more"] and since["offset"] == serial["next_offset"] and not since["rotated"]
    write_log(path, ["new"])
    rotated = console(test_conn, name="u-console", serial=dict(offset=since["next_offset"]))["serial"]
    assert rotated["rotated"] and rotated["lines"] == ["new"]
    assert console(test_conn, name="u-console", serial=dict(lines=100))["serial"]["lines"] == ["new"]


def test_serial_file_of_a_stopped_vm_is_read_and_a_missing_file_is_explained(test_conn, make_dom, tmp_path):
    path = str(tmp_path / "gone.log")
    make_dom("<serial type='file'><source path='%s'/><target port='0'/></serial>" % path, running=False)
    with pytest.raises(NotFoundError, match="does not exist on this node: the module reads it where it runs"):
        console(test_conn, name="u-console", serial=dict())
    write_log(path, ["x"])
    assert console(test_conn, name="u-console", serial=dict())["serial"]["lines"] == ["x"]
    with pytest.raises(InvalidInputError, match="input is written to a pty console only"):
        console(test_conn, name="u-console", serial=dict(input="\n"))


def test_serial_pty_and_no_serial(test_conn, make_dom):
    make_dom("<serial type='pty'><target port='0'/></serial>", running=False)
    with pytest.raises(ConflictError, match="its pty console \\(no log file\\) only exists while it runs"):
        console(test_conn, name="u-console", serial=dict())
    test_conn.lookupByName("u-console").create()
    with pytest.raises(Exception, match="serial console of VM 'u-console'.*not supported"):
        console(test_conn, name="u-console", serial=dict(seconds=1))  # the test driver has no consoles


def test_serial_source_and_tail_helpers(tmp_path):
    root = _xml.parse("<domain><devices><console type='pty'><log file='/l.log'/><alias name='console0'/></console>"
                      "</devices></domain>")
    assert _serial.serial_source(root) == dict(type="pty", path="/l.log", alias="console0")
    assert _serial.serial_source(_xml.parse("<domain><devices/></domain>")) is None
    assert _serial.tail(b"a\nb\nc\n", 2) == 2 and _serial.tail(b"a\nb", 5) == 0 and _serial.tail(b"", 1) == 0


class PumpedStream:
    """A nonblocking console stream as libvirt's remote client gives it without an event loop: data
    that arrived waits (``recv`` says -2) until some other call reads the connection."""

    def __init__(self, arriving):
        self.arriving = list(arriving)
        self.queued = []
        self.sent = b""
        self.finished = self.aborted = False

    def pump(self):
        if self.arriving:
            self.queued.append(self.arriving.pop(0))

    def send(self, data):
        self.sent += data
        return len(data)

    def recv(self, size):
        return self.queued.pop(0) if self.queued else -2

    def finish(self):
        self.finished = True

    def abort(self):
        self.aborted = True


class PumpedDom:
    def __init__(self, stream, fail_open=False):
        self.stream = stream
        self.fail_open = fail_open

    @staticmethod
    def name():
        return "u-pty"

    def isActive(self):
        self.stream.pump()
        return True

    def openConsole(self, alias, stream, flags):
        assert alias == "serial0" and flags == 0
        if self.fail_open:
            exc = libvirt.libvirtError("operation failed: Active console session exists for this domain")
            exc.err = (libvirt.VIR_ERR_OPERATION_FAILED, 0, exc.args[0], 2, None, None, None, 0, 0)
            raise exc


class PumpedConn:
    def __init__(self, stream):
        self.stream = stream

    def newStream(self, flags):
        assert flags == libvirt.VIR_STREAM_NONBLOCK
        return self.stream


def test_read_stream_lets_waiting_console_data_in_and_stops_after_the_seconds():
    stream = PumpedStream([b"\r\r\n", b"debian login: "])
    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds
    out = _serial.read_stream(PumpedConn(stream), PumpedDom(stream), "serial0", 2, "\r",
                              sleep=sleep, clock=lambda: clock[0])
    assert out["text"] == "\r\r\ndebian login: " and out["lines"] == ["", "", "debian login: "]
    assert stream.sent == b"\r" and stream.finished and not stream.aborted
    assert 2.0 <= clock[0] < 2.2


def test_read_stream_aborts_the_stream_when_the_console_is_busy():
    stream = PumpedStream([])
    with pytest.raises(Exception, match="using the serial console of VM 'u-pty': operation failed: Active console session"):
        _serial.read_stream(PumpedConn(stream), PumpedDom(stream, fail_open=True), "serial0", 1)
    assert stream.aborted and not stream.finished
