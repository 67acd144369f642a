# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for the get-pip bootstrap script ansible-test downloads.

ansible-test creates a virtual environment without pip for each sanity test and runs the cached
get-pip script (``~/.ansible/test/cache/get_pip_<version>.py``) to put pip in it.  The download
host is not reachable from our machines, so this script does the same job with the standard
library: ``ensurepip`` (in a subprocess, so that it does not leave PIP_CONFIG_FILE=/dev/null in
our environment) and then ``pip install`` of what ansible-test asked for, through the machine's
normal pip configuration.
"""
import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
