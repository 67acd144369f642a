# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One libvirt connection per run, and the translation of libvirt errors into ours.

Used by modules (through ``_runner``) and by controller-side plugins alike: nothing here knows
about ``AnsibleModule``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import functools
import traceback

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
)

LIBVIRT_IMPORT_ERROR = None
try:
    import libvirt
except ImportError:  # pragma: no cover - depends on the managed node
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()
else:
    # libvirt prints every error to stderr by default; we report errors ourselves.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

HAS_LIBVIRT = libvirt is not None

DEFAULT_URI = "qemu:///system"

#: argument spec shared by every module that talks to libvirt (documented in doc_fragments/common.py)
COMMON_ARGS = dict(
    uri=dict(type="str", default=DEFAULT_URI),
)

# libvirt error code names, grouped by the exception they become.  Looked up by name so that an
# older libvirt-python lacking one of them still works.
_NOT_FOUND_CODES = (
    "VIR_ERR_NO_DOMAIN",
    "VIR_ERR_NO_NETWORK",
    "VIR_ERR_NO_STORAGE_POOL",
    "VIR_ERR_NO_STORAGE_VOL",
    "VIR_ERR_NO_DOMAIN_SNAPSHOT",
    "VIR_ERR_NO_INTERFACE",
    "VIR_ERR_NO_NODE_DEVICE",
    "VIR_ERR_NO_SECRET",
    "VIR_ERR_NO_NWFILTER",
    "VIR_ERR_NO_NETWORK_PORT",
    "VIR_ERR_NO_DOMAIN_CHECKPOINT",
)
_CONFLICT_CODES = (
    "VIR_ERR_OPERATION_INVALID",
    "VIR_ERR_OPERATION_FAILED",
    "VIR_ERR_STORAGE_VOL_EXIST",
    "VIR_ERR_DOM_EXIST",
    "VIR_ERR_STORAGE_POOL_BUILT",
)
_INVALID_CODES = (
    "VIR_ERR_XML_ERROR",
    "VIR_ERR_XML_DETAIL",
    "VIR_ERR_INVALID_ARG",
    "VIR_ERR_CONFIG_UNSUPPORTED",
    "VIR_ERR_NO_SUPPORT",
    "VIR_ERR_XML_INVALID_SCHEMA",
    "VIR_ERR_INVALID_DOMAIN",
)
_CONNECTION_CODES = (
    "VIR_ERR_AUTH_FAILED",
    "VIR_ERR_AUTH_CANCELLED",
    "VIR_ERR_AUTH_UNAVAILABLE",
    "VIR_ERR_NO_CONNECT",
    "VIR_ERR_RPC",
)


def _codes(names):
    if libvirt is None:
        return frozenset()
    return frozenset(getattr(libvirt, n) for n in names if hasattr(libvirt, n))


def require_libvirt():
    if libvirt is None:
        raise MissingDependencyError(
            "The libvirt Python binding is not installed on the managed node: install the "
            "'libvirt-python' package from PyPI (or python3-libvirt from your distribution)",
            exception=LIBVIRT_IMPORT_ERROR,
        )


def _one_line(text):
    return " ".join(str(text).split())


def translate_libvirt_error(exc, context=None):
    """Return the VirtopsError for a ``libvirt.libvirtError``.

    ``context`` ("defining domain 'web1'") is put in front of libvirt's own message.
    """
    code = exc.get_error_code()
    message = _one_line(exc.get_error_message() or str(exc))
    text = "%s: %s" % (context, message) if context else message
    details = dict(libvirt_error_code=code)
    if code in _codes(_NOT_FOUND_CODES):
        return NotFoundError(text, **details)
    if code in _codes(_CONFLICT_CODES):
        return ConflictError(text, **details)
    if code in _codes(_INVALID_CODES):
        return InvalidInputError(text, **details)
    if code in _codes(_CONNECTION_CODES):
        return ConnectionFailedError(text, **details)
    return BackendError(text, **details)


@contextlib.contextmanager
def libvirt_errors(context=None):
    """Translate libvirt errors raised inside the block (``with libvirt_errors("starting 'x'"):``)."""
    require_libvirt()
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate_libvirt_error(exc, context)


def translated(context=None):
    """Decorator form of :func:`libvirt_errors`."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with libvirt_errors(context):
                return func(*args, **kwargs)

        return wrapper

    return decorate


def explain_connect_failure(uri, message):
    """Turn libvirt's text for a failed ``open`` into one line that says what to do."""
    msg = _one_line(message)
    low = msg.lower()
    if "permission denied" in low or "authentication" in low or "polkit" in low or "access denied" in low:
        return (
            "Permission denied connecting to libvirt at %s: run the task as root (become: true) or as a "
            "member of the 'libvirt' group on the hypervisor (%s)" % (uri, msg)
        )
    if (
        "name or service not known" in low
        or "could not resolve" in low
        or "no address associated" in low
        or "temporary failure in name resolution" in low
        or "no route to host" in low
    ):
        return (
            "No such host for libvirt URI %s: check the host name in the URI and that it resolves and is "
            "reachable from the managed node (%s)" % (uri, msg)
        )
    if (
        "no such file or directory" in low
        or "connection refused" in low
        or "failed to connect socket" in low
        or ("daemon" in low and "not" in low)
    ):
        return (
            "The libvirt daemon is not running at %s: start it on the hypervisor (for example "
            "'systemctl start libvirtd' or 'virtqemud'), or point 'uri' at the right host (%s)" % (uri, msg)
        )
    if "no connection driver" in low or "unsupported" in low:
        return (
            "libvirt cannot handle URI %s: check the scheme and that the matching libvirt driver package "
            "is installed on the managed node (%s)" % (uri, msg)
        )
    return "Cannot connect to libvirt at %s: %s" % (uri, msg)


#: libvirt drivers this collection manages: QEMU/KVM, and libvirt's built-in ``test`` driver
SUPPORTED_DRIVERS = ("qemu", "test")
#: paths of a QEMU URI: the system daemon, a user's session daemon, an embedded driver
QEMU_PATHS = ("/system", "/session", "/embed")


def check_uri(uri, what="uri"):
    """Refuse a URI of a driver the collection does not manage, before libvirt tries it.

    libvirt's client hands a URI of a driver it has no client side for (``xen:///``, ``vbox:///``,
    ``lxc:///``, ...) to the local daemon, so where no daemon runs the failure read "the daemon is
    not running", and where one runs, "no connection driver available": neither says what is wrong.
    A URI without ``://`` (an alias from libvirt.conf) is left to libvirt.  ``what`` names the option.
    """
    text = (uri or DEFAULT_URI).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return
    driver = scheme.partition("+")[0].lower()
    if driver not in SUPPORTED_DRIVERS:
        raise InvalidInputError(
            "%s: %r is a URI of libvirt's %r driver; virtops.libvirt manages QEMU/KVM hypervisors: use a qemu URI such "
            "as qemu:///system, qemu+ssh://root@host/system or qemu+tcp://host/system" % (what, uri, driver), uri=uri)
    if driver == "qemu":
        path = rest.partition("/")[2].partition("?")[0].rstrip("/")
        if "/" + path not in QEMU_PATHS:
            raise InvalidInputError(
                "%s: %r: a qemu URI ends in /system (the system daemon) or /session (a user's own), not %r"
                % (what, uri, "/" + path if path else "nothing"), uri=uri)


def uri_is_local(uri):
    """True for a URI served by a daemon on this machine (no host part, no network transport), so
    that files the hypervisor names are files here too."""
    text = (uri or DEFAULT_URI).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return False
    transport = scheme.partition("+")[2]
    host = rest.split("/", 1)[0].split("?", 1)[0]
    return not host and transport in ("", "unix")


class Connection:
    """A libvirt connection opened once, used for a whole run, closed at the end.

    ``with Connection(uri) as conn:`` yields the raw ``virConnect``.
    """

    def __init__(self, uri=DEFAULT_URI, read_only=False):
        self.uri = uri or DEFAULT_URI
        self.read_only = read_only
        self._conn = None

    def open(self):
        require_libvirt()
        if self._conn is None:
            check_uri(self.uri)
            try:
                if self.read_only:
                    self._conn = libvirt.openReadOnly(self.uri)
                else:
                    self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise ConnectionFailedError(
                    explain_connect_failure(self.uri, exc.get_error_message() or str(exc)),
                    uri=self.uri,
                )
            if self._conn is None:  # very old bindings returned None instead of raising
                raise ConnectionFailedError("Cannot connect to libvirt at %s" % self.uri, uri=self.uri)
        return self._conn

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
            self._conn = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc_info):
        self.close()
        return False
