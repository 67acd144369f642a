# SPDX-License-Identifier: GPL-3.0-or-later
"""Connect to HOST PORT and print what the server says (exit 1 with the error when it fails)."""
import socket
import sys

try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as conn:
        print(conn.recv(200).decode().strip())
except OSError as exc:
    print("failed: %s" % exc)
    sys.exit(1)
