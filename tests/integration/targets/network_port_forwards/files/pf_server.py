# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for a guest service: answers every TCP connection on the given ports with
'virtops-pf-guest PORT' and closes it.  Runs in the fake guest's network namespace."""
import selectors
import socket
import sys

sel = selectors.DefaultSelector()
for port in sys.argv[1:]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", int(port)))
    sock.listen(8)
    sel.register(sock, selectors.EVENT_READ, int(port))
while True:
    for key, _events in sel.select():
        conn, _addr = key.fileobj.accept()
        conn.sendall(("virtops-pf-guest %d\n" % key.data).encode())
        conn.close()
