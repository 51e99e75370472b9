#!/usr/bin/env python3
"""One request on a daemon's local API socket (tests only).

Usage: apireq.py SOCKET JSON|- [--fd PATH | --fd-wronly PATH | --fd-pipe]...

Sends JSON (an object, or - to read it from standard input, for requests
over the 128 KiB an argument may hold; "v": 1 is added when absent) as one length-prefixed
frame, passing the descriptors given (docs/api.md, "Files by descriptor":
with the frame's first 4 bytes, SCM_RIGHTS), and prints the answer. Exits 1
when the connection closes without one.
"""
import json
import os
import socket
import struct
import sys


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    sock, fds = args[0], []
    req = json.loads(sys.stdin.read() if args[1] == "-" else args[1])
    rest = args[2:]
    while rest:
        opt = rest.pop(0)
        if opt == "--fd":
            fds.append(os.open(rest.pop(0), os.O_RDONLY))
        elif opt == "--fd-wronly":
            fds.append(os.open(rest.pop(0), os.O_WRONLY))
        elif opt == "--fd-pipe":
            fds.append(os.pipe()[0])
        else:
            sys.exit("apireq.py: unknown option " + opt)
    req.setdefault("v", 1)
    body = json.dumps(req).encode()
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    frame = struct.pack(">I", len(body)) + body
    try:
        # As tern_api_write_fds: the descriptors with the first bytes, the
        # frame in one call, so that a refusal on the first bytes is read.
        sent = socket.send_fds(s, [frame], fds) if fds else s.send(frame)
        s.sendall(frame[sent:])
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused and closed before the end: the answer is still there

    def read(n):
        out = b""
        while len(out) < n:
            got = s.recv(n - len(out))
            if not got:
                sys.exit("apireq.py: the connection closed without an answer")
            out += got
        return out

    print(read(struct.unpack(">I", read(4))[0]).decode())


if __name__ == "__main__":
    main()
