#!/usr/bin/env python3
"""A FUSE file system whose server stops answering (tests only).

Usage: stallfs.py MOUNTPOINT PID[,PID...]

Mounts a file system (through /dev/fuse, no library: needs root) with one
file, "f", of 10 bytes. GETATTR, STATFS and FLUSH requests from any thread
of the listed processes are never answered; everything else is, and
everything from other processes, so that the test's own clients can open,
read and close the file. It stands for a network or FUSE mount whose
server has hung, which a daemon must never wait for on its event loop
(docs/api.md, "Files by descriptor"). Runs until killed; prints "mounted"
once the mount is up.
"""
import ctypes
import errno
import os
import struct
import sys

OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_OPEN, OP_READ = 1, 2, 3, 14, 15
OP_STATFS, OP_RELEASE, OP_FLUSH, OP_INIT = 17, 18, 25, 26
OP_OPENDIR, OP_RELEASEDIR, OP_ACCESS, OP_INTERRUPT, OP_BATCH_FORGET = 27, 29, 34, 36, 42


def tgid(tid):
    """The process a thread belongs to (FUSE names the calling thread)."""
    try:
        with open("/proc/%d/status" % tid) as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return tid


def main():
    mnt, pids = sys.argv[1], {int(p) for p in sys.argv[2].split(",")}
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = ("fd=%d,rootmode=40000,user_id=0,group_id=0" % fd).encode()
    if libc.mount(b"stallfs", mnt.encode(), b"fuse", 0, opts) != 0:
        sys.exit("stallfs: mount: " + os.strerror(ctypes.get_errno()))
    print("mounted", flush=True)

    def attr(ino):
        mode, size = (0o40755, 0) if ino == 1 else (0o100644, 10)
        return struct.pack("<QQQQQQIIIIIIIIII", ino, size, 1, 0, 0, 0, 0, 0, 0, mode, 1,
                           0, 0, 0, 4096, 0)

    def reply(unique, err=0, data=b""):
        try:
            os.write(fd, struct.pack("<IiQ", 16 + len(data), -err, unique) + data)
        except OSError:
            pass  # the request was interrupted meanwhile

    statfs = struct.pack("<QQQQQIIII", 100, 50, 50, 10, 5, 4096, 255, 4096, 0) + b"\0" * 24
    while True:
        try:
            req = os.read(fd, 1 << 21)
        except OSError as e:
            if e.errno == errno.ENODEV:
                return
            if e.errno in (errno.EINTR, errno.ENOENT):
                continue
            raise
        length, op, unique, node = struct.unpack_from("<IIQQ", req)
        pid = struct.unpack_from("<I", req, 32)[0]
        body = req[40:length]
        if op == OP_INIT:
            _, _, readahead, _ = struct.unpack_from("<IIII", body)
            reply(unique, 0, struct.pack("<IIIIHHIIHHII", 7, 31, readahead, 0, 16, 12,
                                         65536, 1, 32, 0, 0, 0) + b"\0" * 24)
        elif op == OP_LOOKUP:
            if body.split(b"\0")[0] == b"f":
                reply(unique, 0, struct.pack("<QQQQII", 2, 0, 0, 0, 0, 0) + attr(2))
            else:
                reply(unique, errno.ENOENT)
        elif op in (OP_GETATTR, OP_STATFS, OP_FLUSH) and tgid(pid) in pids:
            print("holding op %d from thread %d" % (op, pid), flush=True)  # never answered
        elif op == OP_GETATTR:
            reply(unique, 0, struct.pack("<QII", 0, 0, 0) + attr(node))
        elif op in (OP_OPEN, OP_OPENDIR):
            reply(unique, 0, struct.pack("<QII", 1, 0, 0))
        elif op == OP_READ:
            reply(unique, 0, b"0123456789")
        elif op in (OP_STATFS, OP_FLUSH):
            reply(unique, 0, statfs if op == OP_STATFS else b"")
        elif op in (OP_RELEASE, OP_RELEASEDIR, OP_ACCESS):
            reply(unique)
        elif op in (OP_FORGET, OP_BATCH_FORGET, OP_INTERRUPT):
            pass  # no answer is expected
        else:
            reply(unique, errno.ENOSYS)


if __name__ == "__main__":
    main()
