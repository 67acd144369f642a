# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A relay that adds a round trip to libvirt's unix sockets (benchmarks/inventory.py).

  relay.py RTT_MS LISTEN=UPSTREAM...

One unix socket LISTEN per pair, forwarding to the socket UPSTREAM; every chunk is held back until RTT/2 after it
arrived, in both directions, in order and without a throughput limit: every libvirt RPC then costs one more round
trip, as over a LAN or VPN link. Prints `ready` once it listens; runs until it is terminated.
"""

import asyncio
import sys
import time


async def pump(reader, writer, one_way):
    queue = asyncio.Queue()

    async def receive():
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + one_way, data))
            if not data:
                return

    async def send():
        while True:
            due, data = await queue.get()
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(receive(), send())


async def serve(upstream, one_way, reader, writer):
    up_reader, up_writer = await asyncio.open_unix_connection(upstream)
    await asyncio.gather(pump(reader, up_writer, one_way), pump(up_reader, writer, one_way), return_exceptions=True)


async def main(argv):
    one_way = float(argv[0]) / 2000.0
    for pair in argv[1:]:
        listen, upstream = pair.split("=", 1)
        await asyncio.start_unix_server(lambda r, w, u=upstream: serve(u, one_way, r, w), path=listen)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
