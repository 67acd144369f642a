# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A cache of compiled code for Python sources imported from zip files (Ansible's module payloads).

Ansible runs every module from a zip file in a new temporary directory, so Python compiles every
``module_utils`` file it imports, every time: the ``.pyc`` files Python keeps for normal imports are never
written for a zip.  Under TCG emulation that compile is most of a small module's run.  :func:`install`
makes ``zipimport`` keep the compiled code of each source in a directory, keyed by the SHA-256 of the
interpreter's bytecode magic number and the source's bytes, and load it from there the next time
(``marshal``, what ``.pyc`` files hold), with the file names of this run.  The code run is exactly what
compiling the same bytes gives: a different source or another Python version is another key.

Safety: the directory is used only when it is owned by the effective user and no one else may write to
it (0700 when this module makes it); entries are written to a temporary name and renamed, so concurrent
runs see whole entries or none.  Anything unexpected (no such hook in this Python, a read-only or foreign
directory, a damaged entry) falls back to compiling, silently.  Entries not used for ``PRUNE_DAYS`` days
are removed when a new one is written.

Two users:

* every module of the collection calls :func:`for_module` before it imports the rest of its
  ``module_utils``: on the managed node the cache is ``~/.ansible/virtops_libvirt_code`` (or the directory
  in ``VIRTOPS_LIBVIRT_CODE_CACHE``; ``off`` there turns it off); only when the module runs from a payload
  zip, so unit tests and the controller's plugins are left alone;
* the ``guest_agent`` connection plugin copies this file into guests as ``usercustomize.py`` (Python
  imports it at start-up from ``PYTHONPATH``), with the cache directory in ``VIRTOPS_LIBVIRT_CODE_CACHE``;
  both variables are taken out of the environment at once, so nothing the module starts inherits them.
  There it covers ``ansible.module_utils`` too, which Ansible imports before any module code runs.

The file must stay importable by any Python a guest may have (2.7 included) and use the standard
library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

#: environment variable: the cache directory, or "off" (the guest_agent connection plugin sets it in guests)
ENV = "VIRTOPS_LIBVIRT_CODE_CACHE"
#: the cache of modules on a managed node, under the user's home
MODULE_DIR = "~/.ansible/virtops_libvirt_code"
OFF = ("off", "0", "false", "no", "")
#: entries unused for this many days are removed when a new entry is written
PRUNE_DAYS = 30
_DAY = 86400


def _usable(directory, make):
    """Whether ``directory`` may hold code for this process: owned by the effective user, not writable
    by anyone else; made (0700) when missing and ``make``."""
    try:
        if make and not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        st = os.lstat(directory)
    except OSError:
        return False
    import stat
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _renamed(code, filename):
    """``code`` and the code objects in it, with ``co_filename`` set to ``filename``."""
    consts = tuple(_renamed(c, filename) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _prune(directory, now):
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        try:
            if now - os.lstat(path).st_mtime > PRUNE_DAYS * _DAY:
                os.unlink(path)
        except OSError:
            pass


def install(directory, make=True):
    """Make ``zipimport`` keep and reuse compiled code in ``directory``; True when installed.

    Does nothing (False) on a Python whose ``zipimport`` has no ``_compile_source`` (before 3.8), when
    ``directory`` is not usable (see :func:`_usable`), or when already installed.
    """
    try:
        import zipimport
        import hashlib
        import marshal
        import time
        from importlib.util import MAGIC_NUMBER
    except ImportError:
        return False
    compile_source = getattr(zipimport, "_compile_source", None)
    if compile_source is None or getattr(compile_source, "virtops_code_cache", False):
        return False
    if not _usable(directory, make):
        return False

    def cached_compile_source(pathname, source):
        path = os.path.join(directory, hashlib.sha256(MAGIC_NUMBER + source).hexdigest()[:48])
        now = time.time()
        try:
            with open(path, "rb") as f:
                code = marshal.load(f)
                used = os.fstat(f.fileno()).st_mtime
            if now - used > _DAY:
                os.utime(path, None)
            return _renamed(code, pathname)
        except (OSError, IOError, ValueError, EOFError, TypeError):
            pass
        code = compile_source(pathname, source)
        temporary = "%s.%d.tmp" % (path, os.getpid())
        try:
            with open(temporary, "wb") as f:
                marshal.dump(code, f)
            os.rename(temporary, path)
        except (OSError, IOError, ValueError):
            try:
                os.unlink(temporary)
            except OSError:
                pass
        else:
            if not pruned:
                pruned.append(now)
                _prune(directory, now)
        return code

    pruned = []  # once per process: at the first new entry

    cached_compile_source.virtops_code_cache = True
    zipimport._compile_source = cached_compile_source
    return True


def for_module():
    """Called by each module before it imports the rest of its ``module_utils``: install the cache in
    ``$VIRTOPS_LIBVIRT_CODE_CACHE``, else :data:`MODULE_DIR`, when this file was loaded from a zip (the
    module's payload); True when installed."""
    loader = globals().get("__loader__")
    zipimporter = getattr(sys.modules.get("zipimport"), "zipimporter", None)
    if zipimporter is None or not isinstance(loader, zipimporter):
        return False
    directory = os.environ.get(ENV)
    if directory is not None and directory.strip().lower() in OFF:
        return False
    try:
        return install(os.path.expanduser(directory or MODULE_DIR))
    except Exception:  # pylint: disable=broad-except  # a cache must never fail the module
        return False


def _from_environment():
    """As ``usercustomize``: install into ``$VIRTOPS_LIBVIRT_CODE_CACHE``; take that variable, and this file's
    directory from ``PYTHONPATH`` and ``sys.path``, out of what the process and its children see."""
    directory = os.environ.pop(ENV, None)
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != here]
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        os.environ.pop("PYTHONPATH", None)
    sys.path[:] = [p for p in sys.path if not p or os.path.abspath(p) != here]
    if directory and directory.strip().lower() not in OFF:
        try:
            install(directory, make=False)
        except Exception:  # pylint: disable=broad-except  # never break the interpreter's start-up
            pass


if __name__ == "usercustomize":
    _from_environment()
