#!/usr/bin/env python3
"""A recording HTTP proxy for tests: clients that are to be run as a user runs them (the
examples, with their own HTTP code) talk to it, it forwards each request to the node's API and
writes the exchange as one JSON line, in the shape tests/integration/lib.sh's http_record
writes, for tests/tools/openapi_check.py.

  http_recorder.py --listen PORT --to PORT --log FILE

Loopback only; one request per connection is enough for the clients it serves.
"""
import argparse
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--to", type=int, required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    lock = threading.Lock()
    log = open(a.log, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            conn = http.client.HTTPConnection("127.0.0.1", a.to, timeout=120)
            hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn.request(self.command, self.path, body=body or None, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            self.send_response_only(r.status, r.reason)
            for k, v in r.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            x = {"method": self.command, "path": self.path, "status": r.status,
                 "headers": {k.lower(): v for k, v in r.getheaders()},
                 "body": data[:256 * 1024].decode("utf-8", "surrogateescape")}
            if body:
                x["request"] = body[:256 * 1024].decode("utf-8", "surrogateescape")
            with lock:
                log.write(json.dumps(x) + "\n")
                log.flush()
            conn.close()
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = forward

        def log_message(self, fmt, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", a.listen), Handler).serve_forever()


if __name__ == "__main__":
    main()
