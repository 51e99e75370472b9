#!/usr/bin/env python3
"""netproxy.py LISTEN_PORT TARGET_PORT [--delay MS] [--cut-every S]

A TCP proxy on 127.0.0.1 for network-fault tests: every chunk is held back
--delay ms (each direction), and every --cut-every seconds all connections
are cut (both sides closed abruptly), as a flaky link between an agency and
its broker would do. Prints one line per cut to stderr."""
import argparse
import asyncio
import random
import socket
import sys

conns = set()


async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if delay:
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError, OSError):
        pass
    finally:
        abort(writer)


def abort(writer):
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # RST, not FIN: a cut link, not a polite goodbye.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.close()
    except OSError:
        pass


async def handle(creader, cwriter, target, delay):
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        abort(cwriter)
        return
    pair = (cwriter, swriter)
    conns.add(pair)
    await asyncio.gather(pipe(creader, swriter, delay), pipe(sreader, cwriter, delay))
    conns.discard(pair)


async def cutter(every):
    n = 0
    while True:
        await asyncio.sleep(every * random.uniform(0.5, 1.5))
        n += 1
        print(f"netproxy: cut {n} ({len(conns)} connection(s))", file=sys.stderr, flush=True)
        for c, s in list(conns):
            abort(c)
            abort(s)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("listen", type=int)
    ap.add_argument("target", type=int)
    ap.add_argument("--delay", type=float, default=0, help="ms per chunk")
    ap.add_argument("--cut-every", type=float, default=0, help="seconds")
    a = ap.parse_args()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, a.target, a.delay / 1000), "127.0.0.1", a.listen)
    tasks = [server.serve_forever()]
    if a.cut_every:
        tasks.append(cutter(a.cut_every))
    await asyncio.gather(*tasks)


asyncio.run(main())
