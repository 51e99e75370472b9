#!/usr/bin/env python3
"""The round trip an agency system makes, over HTTP and webhooks, standard library only.

The sender's system sends a message; the recipient's system hears of it by webhook, fetches it
from its node's inbox, and acknowledges it; the sender's system hears by webhook that it was
delivered (the recipient's signed receipt came back). Each system's webhook receiver is
examples/webhook_receiver.py, which verifies every push and writes it to its --out file.

  send_and_ack.py --sender http://127.0.0.1:7713 --sender-token unhcr/http.token \\
      --sender-events unhcr.events --recipient http://127.0.0.1:7717 \\
      --recipient-token sweden/http.token --recipient-events sweden.events \\
      --to sweden --type case-referral --body referral.json

Prints one line per step (ids only) and exits 0 when the loop is closed.
"""
import argparse
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_client import TernClient, TernError  # noqa: E402


def wait_push(path, kind, message_id, timeout):
    """The push of kind about message_id in the receiver's file, waiting for it."""
    until = time.time() + timeout
    while time.time() < until:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    e = json.loads(line)["event"]
                    if e["type"] == kind and e["data"]["messageId"] == message_id:
                        return e
        time.sleep(0.1)
    sys.exit("no %s push for %s within %d s" % (kind, message_id, timeout))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k in ("sender", "sender-token", "sender-events", "recipient", "recipient-token",
              "recipient-events", "to", "type", "body"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--timeout", type=int, default=60)
    a = ap.parse_args()
    sender = TernClient(a.sender, token_file=a.sender_token)
    recipient = TernClient(a.recipient, token_file=a.recipient_token)
    with open(a.body, encoding="utf-8") as f:
        body = json.load(f)

    ref = "example-" + uuid.uuid4().hex  # a retry with this key would not send twice
    try:
        sent = sender.send(a.type, a.to.split(","), body, client_ref=ref)
    except TernError as e:
        sys.exit("send refused: %s" % e)
    mid = sent["messageId"]
    print("sent %s" % mid)

    pushed = wait_push(a.recipient_events, "message.received", mid, a.timeout)
    print("recipient heard of %s (case %s) by webhook" % (mid, pushed["data"]["caseId"]))
    msg = recipient.inbox_show(mid)
    assert msg["header"]["messageId"] == mid and msg["type"] == a.type
    print("recipient fetched %s: %s from %s" % (mid, msg["type"], msg["header"]["sender"]))
    recipient.ack(mid)
    print("recipient acknowledged %s" % mid)
    if any(m["messageId"] == mid for m in recipient.inbox()):
        sys.exit("%s is still in the inbox after its ack" % mid)

    final = wait_push(a.sender_events, "message.final", mid, a.timeout)
    print("sender heard %s is %s" % (mid, final["data"]["state"]))
    if final["data"]["state"] != "delivered" or sender.status(mid)["state"] != "delivered":
        sys.exit("%s was not delivered" % mid)
    # The same send again is the same message, not a second one.
    if sender.send(a.type, a.to.split(","), body, client_ref=ref)["messageId"] != mid:
        sys.exit("a retry with the same clientRef made a second message")
    print("loop closed for %s" % mid)


if __name__ == "__main__":
    main()
