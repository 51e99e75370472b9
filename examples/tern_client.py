"""A client of the Tern node's HTTP API (docs/api.md, docs/openapi.yaml), standard library only.

    from tern_client import TernClient, TernError
    unhcr = TernClient("http://127.0.0.1:7713", token_file="/tmp/fed/unhcr/http.token")
    sent = unhcr.send("case-referral", ["sweden"], body, client_ref="ref-0001")
    print(unhcr.status(sent["messageId"])["state"])

Every method returns the answer's JSON; a refusal raises TernError carrying the RFC 9457
problem details (status, code, detail, and field or messageId when the node names one).
The token file is read with the white space around it stripped, as the docs say.
"""
import json
import urllib.error
import urllib.parse
import urllib.request


class TernError(Exception):
    def __init__(self, status, problem):
        self.status = status
        self.problem = problem
        self.code = problem.get("code", "")
        super().__init__("%d %s: %s" % (status, self.code, problem.get("detail", "")))


class TernClient:
    def __init__(self, base_url, token=None, token_file=None, timeout=90):
        if token is None:
            with open(token_file, encoding="ascii") as f:
                token = f.read().strip()
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(self, method, path, body=None, query=None):
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
                return json.loads(raw) if raw else {}
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"detail": raw.decode("utf-8", "replace")}
            raise TernError(e.code, problem) from None

    def send(self, type_, to, body, in_reply_to=None, client_ref=None, ttl_seconds=None,
             wait_ms=None):
        req = {"type": type_, "to": list(to), "body": body}
        for k, v in (("inReplyTo", in_reply_to), ("clientRef", client_ref),
                     ("ttlSeconds", ttl_seconds), ("waitMs", wait_ms)):
            if v is not None:
                req[k] = v
        return self._call("POST", "/v1/messages", req)

    def status(self, message_id):
        return self._call("GET", "/v1/messages/" + message_id)

    def messages(self, **filters):
        """Sent and received messages, one page: direction, caseId, type, state, peer, since,
        until, limit, cursor (docs/api.md). Answers {"messages", "nextCursor"}."""
        return self._call("GET", "/v1/messages", query=filters)

    def inbox(self):
        return self._call("GET", "/v1/inbox")["messages"]

    def inbox_next(self, wait_ms=0):
        return self._call("POST", "/v1/inbox/next", {"waitMs": wait_ms})["message"]

    def inbox_show(self, message_id):
        return self._call("GET", "/v1/inbox/" + message_id)["message"]

    def ack(self, message_id):
        return self._call("POST", "/v1/inbox/%s/ack" % message_id)

    def node(self):
        return self._call("GET", "/v1/node")

    def case(self, case_id):
        return self._call("GET", "/v1/cases/" + urllib.parse.quote(case_id, safe=""))["case"]
