#!/usr/bin/env python3
"""http_hostile.py: hostile clients of an HTTP server on 127.0.0.1, for
tests/integration/test_http_hostile.sh. Never sends a token.

  http_hostile.py hold PORT --idle N --slow N [--ready FILE] [--stats FILE]
      Opens N idle connections (connect, send nothing) and N slow ones (a
      request line and headers one byte at a time, about one byte a second
      each, never finished), writes "ready" to FILE once all are connected,
      and holds them until SIGTERM, opening a new one for each the server
      closes. Writes its counts (connections opened, closed by the server,
      by kind) to the stats FILE every second and as one JSON line at exit.

  http_hostile.py upload PORT --count N --size BYTES [--path P] [--tus]
      N connections at once, each a POST with Content-Length BYTES (with
      --tus a tus PATCH: Tus-Resumable, Upload-Offset and Content-Type
      application/offset+octet-stream) (no
      Expect: 100-continue: the body follows the headers at once, as fast
      as the server takes it). Each stops at the server's answer. Prints one
      JSON line: statuses, the slowest answer in ms, and the most body bytes
      one connection wrote before its answer (into the kernel's buffers as
      much as into the server)."""
import argparse
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            sys.exit("http_hostile: RLIMIT_NOFILE hard limit %d < %d" % (hard, want))


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


SLOW_REQUEST = b"GET /v1/node HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nX-Pad: " + b"a" * 100000


def hold(a):
    raise_nofile(a.idle + a.slow + 64)
    sel = selectors.DefaultSelector()
    conns = {}  # socket -> [kind, bytes of SLOW_REQUEST sent, next send time]
    stats = {"opened": 0, "refused": 0, "closed_idle": 0, "closed_slow": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def open_one(kind, now):
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", a.port))
        except OSError:
            s.close()
            stats["refused"] += 1
            return False
        s.setblocking(False)
        # Slow clients spread their bytes over the second.
        conns[s] = [kind, 0, now + (len(conns) % 1000) / 1000.0]
        sel.register(s, selectors.EVENT_READ)
        stats["opened"] += 1
        return True

    now = time.monotonic()
    want = ["idle"] * a.idle + ["slow"] * a.slow
    for kind in want:
        open_one(kind, now)
    if a.ready:
        write_atomic(a.ready, "ready %d\n" % len(conns))
    next_stats = 0
    while not stop:
        now = time.monotonic()
        if a.stats and now >= next_stats:
            write_atomic(a.stats, json.dumps(stats) + "\n")
            next_stats = now + 1.0
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:  # closed by the server (timeout, or an answer)
                kind = conns.pop(s)[0]
                sel.unregister(s)
                s.close()
                stats["closed_" + kind] += 1
                open_one(kind, now)
        for s, st in list(conns.items()):
            if st[0] == "slow" and now >= st[2]:
                try:
                    s.send(SLOW_REQUEST[st[1]:st[1] + 1])
                    st[1] += 1
                except OSError:
                    pass
                st[2] = now + 1.0
    stats["held_at_end"] = len(conns)
    print(json.dumps(stats), flush=True)


def upload(a):
    raise_nofile(a.count + 64)
    sel = selectors.DefaultSelector()
    if a.tus:
        head = ("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
                "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                "Content-Length: %d\r\n\r\n" % (a.path, a.size)).encode()
    else:
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (a.path, a.size)).encode()
    chunk = b"x" * 65536
    conns = {}
    t0 = time.monotonic()
    for _ in range(a.count):
        s = socket.socket()
        s.connect(("127.0.0.1", a.port))
        s.setblocking(False)
        conns[s] = {"out": head, "sent_body": 0, "resp": b"", "done": False, "ms": None}
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    pending = len(conns)
    deadline = t0 + a.timeout
    while pending and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=0.1):
            s, c = key.fileobj, conns[key.fileobj]
            if c["done"]:
                continue
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                c["resp"] += data
                if b"\r\n" in c["resp"] or not data:
                    c["done"] = True
                    c["ms"] = (time.monotonic() - t0) * 1000
                    pending -= 1
                    sel.unregister(s)
                    continue
            if ev & selectors.EVENT_WRITE:
                try:
                    if c["out"]:
                        n = s.send(c["out"])
                        c["out"] = c["out"][n:]
                    elif c["sent_body"] < a.size:
                        n = s.send(chunk[:a.size - c["sent_body"]])
                        c["sent_body"] += n
                    else:
                        sel.modify(s, selectors.EVENT_READ)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    # The server answered and closed: stop sending, read.
                    sel.modify(s, selectors.EVENT_READ)
    statuses = {}
    for s, c in conns.items():
        line = c["resp"].split(b"\r\n", 1)[0].split()
        code = line[1].decode() if len(line) > 1 else ("timeout" if not c["done"] else "reset")
        statuses[code] = statuses.get(code, 0) + 1
        s.close()
    ms = [c["ms"] for c in conns.values() if c["ms"] is not None]
    print(json.dumps({
        "statuses": statuses,
        "max_ms": round(max(ms), 1) if ms else None,
        "max_body_written": max(c["sent_body"] for c in conns.values()),
    }), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hold")
    h.add_argument("port", type=int)
    h.add_argument("--idle", type=int, default=500)
    h.add_argument("--slow", type=int, default=500)
    h.add_argument("--ready")
    h.add_argument("--stats")
    u = sub.add_parser("upload")
    u.add_argument("port", type=int)
    u.add_argument("--count", type=int, default=64)
    u.add_argument("--size", type=int, default=8 * 1024 * 1024)
    u.add_argument("--path", default="/v1/messages")
    u.add_argument("--tus", action="store_true")
    u.add_argument("--timeout", type=float, default=20.0)
    a = p.parse_args()
    hold(a) if a.cmd == "hold" else upload(a)


if __name__ == "__main__":
    main()
