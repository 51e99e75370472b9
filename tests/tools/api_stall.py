#!/usr/bin/env python3
"""api_stall.py SOCKET COUNT MODE [--request JSON] [--hold SECONDS] [--out FILE]

Local-API clients that misbehave, for tests of a daemon's local API or control
socket (docs/api.md, "Limits"). Opens COUNT connections to the Unix socket
SOCKET and, on each, according to MODE:

  prefix   sends 2 bytes of the 4-byte length prefix, then nothing
  partial  declares a frame of 16 MiB - 1 (within the limit), sends 4 KiB of
           it, then nothing
  huge     declares a frame of 4 GiB - 1 (over any limit), then nothing; the
           daemon should answer at once with an error
  noread   sends a whole request (--request, default node.info) and never
           reads the answer

Then it holds the connections, reading nothing but what an error answer to
`prefix`, `partial` or `huge` brings, and notes when the daemon closes each.
It prints "connected N" once connected (connecting gives up after 5 s: a
daemon that does not accept leaves some out), then, when every connection is
closed or --hold seconds have passed, one JSON line:
  {"mode", "count", "connected", "closed", "early", "first_close_s",
   "last_close_s", "first_answer_s", "answers": {"<error code>": n, ...}}
with times counted from the moment the last connection was made ("early":
how many were closed within 2 s of it). It raises its own limit on open
files to hold COUNT connections. Standard library only."""
import argparse
import errno
import json
import resource
import select
import socket
import struct
import sys
import time


def connect_all(path, count, give_up):
    socks, pending = [], count
    while pending and time.monotonic() < give_up:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            # The listen backlog is full: the daemon is not accepting.
            s.close()
            time.sleep(0.05)
            continue
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.ECONNREFUSED):
                s.close()
                time.sleep(0.05)
                continue
            raise
        socks.append(s)
        pending -= 1
    return socks


def send_some(s, data, give_up):
    while data and time.monotonic() < give_up:
        try:
            n = s.send(data)
            data = data[n:]
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("count", type=int)
    ap.add_argument("mode", choices=["prefix", "partial", "huge", "noread"])
    ap.add_argument("--request", default='{"v":1,"op":"node.info"}')
    ap.add_argument("--hold", type=float, default=30.0)
    ap.add_argument("--out", help="also write the summary line to FILE")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < a.count + 64:
        want = a.count + 64
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    socks = connect_all(a.socket, a.count, time.monotonic() + 5)
    give_up = time.monotonic() + 5
    for s in socks:
        if a.mode == "prefix":
            send_some(s, b"\x00\x00", give_up)
        elif a.mode == "partial":
            send_some(s, struct.pack(">I", 16 * 1024 * 1024 - 1) + b"x" * 4096, give_up)
        elif a.mode == "huge":
            send_some(s, b"\xff\xff\xff\xff", give_up)
        else:
            body = a.request.encode()
            send_some(s, struct.pack(">I", len(body)) + body, give_up)
    t0 = time.monotonic()
    print("connected %d" % len(socks), flush=True)

    open_ = {s.fileno(): s for s in socks}
    got = {fd: b"" for fd in open_}
    closed_at, answers, first_answer = [], {}, None
    poller = select.poll()
    for fd in open_:
        # noread must not read: only the hang-up is watched.
        poller.register(fd, select.POLLIN if a.mode != "noread" else 0)
    end = t0 + a.hold
    while open_ and time.monotonic() < end:
        for fd, ev in poller.poll(100):
            s = open_.get(fd)
            if s is None:
                continue
            done = False
            if ev & select.POLLIN:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data:
                    got[fd] += data
                    if first_answer is None:
                        first_answer = time.monotonic() - t0
                    continue
                done = True
            if ev & (select.POLLHUP | select.POLLERR) or done:
                closed_at.append(time.monotonic() - t0)
                poller.unregister(fd)
                del open_[fd]
                b = got[fd]
                if len(b) >= 4 and len(b) >= 4 + struct.unpack(">I", b[:4])[0]:
                    try:
                        code = json.loads(b[4:]).get("error", "ok")
                    except ValueError:
                        code = "not-json"
                    answers[code] = answers.get(code, 0) + 1
                s.close()
    line = json.dumps({
        "mode": a.mode, "count": a.count, "connected": len(socks),
        "closed": len(closed_at),
        "early": sum(1 for t in closed_at if t < 2),
        "first_close_s": round(min(closed_at), 3) if closed_at else None,
        "last_close_s": round(max(closed_at), 3) if closed_at else None,
        "first_answer_s": round(first_answer, 3) if first_answer is not None else None,
        "answers": answers})
    print(line, flush=True)
    if a.out:
        with open(a.out, "w") as f:
            f.write(line + "\n")
    for s in open_.values():
        s.close()


if __name__ == "__main__":
    sys.exit(main())
