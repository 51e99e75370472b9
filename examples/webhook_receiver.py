#!/usr/bin/env python3
"""An agency system's receiver of Tern's webhook pushes, standard library only.

Each push is verified as the Standard Webhooks specification says before it is
taken: the signature (HMAC-SHA256 over "webhook-id.webhook-timestamp.body" with
the secret's bytes, compared in constant time) and the timestamp (at most five
minutes old or ahead). A push whose webhook-id was taken before is answered 200
and not taken again: the node delivers at least once.

  webhook_receiver.py --port 9000 --secret-file webhook.secret --out events.jsonl

Each taken push is appended to --out as one JSON line {"id", "event"} and
flushed to disk before the answer, so the node deletes only what is safe here.
Repeats are counted in --out + ".repeats". The secret file holds "whsec_" and
the base64 of the key (tern-node's [webhook] secret_file), white space around
it stripped.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE_S = 300


def load_secret(path):
    text = open(path, encoding="ascii").read().strip()
    if not text.startswith("whsec_"):
        sys.exit("%s: the secret must start with whsec_" % path)
    return base64.b64decode(text[len("whsec_"):])


def verify(key, headers, body, now=None):
    """The push's id if its signature and timestamp hold, else None."""
    wid, ts, sig = (headers.get("webhook-id"), headers.get("webhook-timestamp"),
                    headers.get("webhook-signature"))
    if not wid or not ts or not sig or not ts.isdigit():
        return None
    if abs((now or time.time()) - int(ts)) > TOLERANCE_S:
        return None
    mac = hmac.new(key, b"%s.%s." % (wid.encode(), ts.encode()) + body, hashlib.sha256).digest()
    want = base64.b64encode(mac).decode()
    for s in sig.split(" "):
        version, _, value = s.partition(",")
        if version == "v1" and hmac.compare_digest(value, want):
            return wid
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    key = load_secret(a.secret_file)
    seen = set()
    if os.path.exists(a.out):
        with open(a.out, encoding="utf-8") as f:
            seen = {json.loads(line)["id"] for line in f if line.strip()}
    out = open(a.out, "a", encoding="utf-8")
    repeats = open(a.out + ".repeats", "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            wid = verify(key, self.headers, body)
            if wid is None:
                self.send_response(401)
                self.end_headers()
                return
            if wid in seen:
                repeats.write(wid + "\n")
                repeats.flush()
            else:
                out.write(json.dumps({"id": wid, "event": json.loads(body)}) + "\n")
                out.flush()
                os.fsync(out.fileno())
                seen.add(wid)
            self.send_response(204)
            self.end_headers()

        def log_message(self, fmt, *args):  # ids only would be fine; keep it quiet
            pass

    HTTPServer(("127.0.0.1", a.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
