#!/usr/bin/env python3
"""Checks docs/openapi.yaml, and HTTP exchanges against it.

  openapi_check.py DOC META                  the document satisfies the OpenAPI 3.1 schema
                                             (META), and each of its schemas is a valid
                                             JSON Schema 2020-12
  openapi_check.py DOC META --exchanges F    also each exchange recorded in F (JSON lines,
                                             written by http_record in tests/integration/lib.sh)
  openapi_check.py DOC META --pushes F       also each webhook push in F (JSON lines
                                             {"id", "event"}, as examples/webhook_receiver.py
                                             writes them) against DOC's webhooks
  openapi_check.py DOC --table               docs/api.md's endpoint table, from DOC

An exchange is described when its path and method are (else it must be a 404, a 405 with
Allow, or a 401, as problem details); its status is one the operation lists; the response
has the headers the document requires and a Content-Type it lists; a JSON body satisfies its
schema. A JSON request body the document refuses must have been refused (4xx); one it accepts
must not be refused for a field ("field" in the problem). So must a query string the
document refuses (an argument it does not declare, one given twice, a value its schema
refuses); a 400 for a query names one of the arguments given (the node checks some against
one another, such as state against direction, which the document cannot say). Python's standard library and
Debian's python3-jsonschema and python3-yaml only.
"""
import json
import re
import sys
import urllib.parse
import warnings

import jsonschema
import yaml

# Newer jsonschema deprecates RefResolver; Debian 12's (4.10) has nothing else.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) if path.endswith((".yaml", ".yml")) else json.load(f)


def check_document(doc, meta):
    errs = []
    v = jsonschema.Draft202012Validator(meta)
    for e in sorted(v.iter_errors(doc), key=lambda e: list(e.path)):
        errs.append("document: %s: %s" % ("/".join(map(str, e.path)), e.message))
    for name, s in doc.get("components", {}).get("schemas", {}).items():
        try:
            jsonschema.Draft202012Validator.check_schema(s)
        except jsonschema.SchemaError as e:
            errs.append("schema %s: %s" % (name, e.message))
    for p, item in doc.get("paths", {}).items():
        for m, op in item.items():
            if m == "parameters":
                continue
            if "operationId" not in op:
                errs.append("%s %s: no operationId" % (m.upper(), p))
    return errs


def resolve(doc, obj):
    while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
        node = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def validator(doc, schema):
    # The document is the root, so "#/components/..." references resolve.
    root = dict(doc)
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    resolver = jsonschema.RefResolver.from_schema(root)
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def errors_of(doc, schema, value):
    return ["%s: %s" % ("/".join(map(str, e.path)) or "(top)", e.message)
            for e in validator(doc, schema).iter_errors(value)]


def templates(doc):
    out = []
    for p in doc["paths"]:
        rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$"
        out.append((re.compile(rx), p))
    return out


def media(ctype):
    return (ctype or "").split(";")[0].strip().lower()


def body_of(x):
    if "body" in x:
        return x["body"].encode("utf-8", "surrogateescape")
    try:
        with open(x["body_file"], "rb") as f:
            return f.read()
    except (KeyError, OSError):
        return b""


def check_problem(doc, x, raw, where):
    errs = []
    if media(x["headers"].get("content-type")) != "application/problem+json":
        return ["%s: a %d is not application/problem+json" % (where, x["status"])]
    try:
        p = json.loads(raw)
    except ValueError:
        return ["%s: the problem details are not JSON" % where]
    errs += ["%s: %s" % (where, e) for e in
             errors_of(doc, {"$ref": "#/components/schemas/Problem"}, p)]
    if p.get("status") != x["status"]:
        errs.append("%s: problem status %r, HTTP status %d" % (where, p.get("status"), x["status"]))
    return errs


def check_exchange(doc, tpl, x):
    method, path, status = x["method"].lower(), x["path"].split("?")[0], x["status"]
    where = "%s %s -> %d" % (x["method"], x["path"][:80], status)
    raw = body_of(x)
    hdrs = x["headers"]
    matched = [p for rx, p in tpl if rx.match(path)]
    if not matched:
        if status in (401, 404):
            return check_problem(doc, x, raw, where)
        return ["%s: the path is not described, and the answer is not 404" % where]
    item = doc["paths"][matched[0]]
    if method not in item:
        if status == 405 and "allow" not in hdrs:
            return ["%s: 405 without Allow" % where]
        if status in (401, 405):
            return check_problem(doc, x, raw, where)
        return ["%s: the method is not described, and the answer is not 405" % where]
    op = item[method]
    errs = []
    resp = op["responses"].get(str(status)) or op["responses"].get("default")
    if resp is None:
        return ["%s: status %d is not described (%s)" % (where, status, ", ".join(op["responses"]))]
    resp = resolve(doc, resp)
    for name, h in (resp.get("headers") or {}).items():
        h = resolve(doc, h)
        value = hdrs.get(name.lower())
        if value is None:
            if h.get("required"):
                errs.append("%s: header %s missing" % (where, name))
            continue
        errs += ["%s: header %s: %s" % (where, name, e)
                 for e in errors_of(doc, h.get("schema", {}), value)]
    content = resp.get("content")
    if content and method != "head":
        mt = media(hdrs.get("content-type"))
        spec = content.get(mt) or content.get("*/*")
        if spec is None:
            errs.append("%s: Content-Type %r, not one of %s" % (where, mt, ", ".join(content)))
        elif mt.endswith("json"):
            try:
                value = json.loads(raw)
            except ValueError:
                errs.append("%s: the body is not JSON" % where)
            else:
                errs += ["%s: %s" % (where, e) for e in errors_of(doc, spec.get("schema", {}), value)]
    errs += check_query(doc, op, x, raw, where)
    # The request, when the test recorded its JSON body.
    rb = resolve(doc, op.get("requestBody", {}))
    rschema = (rb.get("content") or {}).get("application/json", {}).get("schema")
    if rschema is not None and ("request_file" in x or "request" in x):
        if "request" in x:
            req_raw = x["request"].encode("utf-8", "surrogateescape")
        else:
            try:
                with open(x["request_file"], "rb") as f:
                    req_raw = f.read()
            except OSError:
                req_raw = None
        bad = None
        if req_raw is None or req_raw.strip() == b"":
            bad = "no body" if rb.get("required") else None
        else:
            try:
                bad_list = errors_of(doc, rschema, json.loads(req_raw))
                bad = bad_list[0] if bad_list else None
            except ValueError:
                bad = "not JSON"
        if bad and not 400 <= status < 500:
            errs.append("%s: the document refuses this request (%s), the node answered %d"
                        % (where, bad, status))
        if not bad and status == 400:
            try:
                field = json.loads(raw).get("field")
            except (ValueError, AttributeError):
                field = None
            if field:
                errs.append("%s: the document allows this request, the node refused field %r"
                            % (where, field))
    return errs


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def query_params(doc, op):
    return {p["name"]: p for p in (resolve(doc, q) for q in op.get("parameters", []))
            if p.get("in") == "query"}


def query_refusal(doc, params, args):
    """Why the document refuses these query arguments, or None."""
    seen = set()
    for k, v in args:
        if k not in params:
            return "argument %r is not declared" % k
        if k in seen:
            return "argument %r given twice" % k
        seen.add(k)
        sch = resolve(doc, params[k].get("schema", {}))
        value = v
        if sch.get("type") == "integer":
            if not re.match(r"^-?\d+$", v):
                return "argument %r is not an integer" % k
            value = int(v)
        if sch.get("format") == "date-time" and not RFC3339.match(v):
            return "argument %r is not an RFC 3339 time" % k
        bad = errors_of(doc, sch, value)
        if bad:
            return "argument %r: %s" % (k, bad[0])
    return None


def check_query(doc, op, x, raw, where):
    params = query_params(doc, op)
    query = x["path"].split("?", 1)[1] if "?" in x["path"] else ""
    if not params:
        return []
    args = urllib.parse.parse_qsl(query, keep_blank_values=True)
    bad = query_refusal(doc, params, args)
    status = x["status"]
    if bad and not 400 <= status < 500:
        return ["%s: the document refuses this query (%s), the node answered %d" % (where, bad, status)]
    if status == 400:
        try:
            field = json.loads(raw).get("field")
        except (ValueError, AttributeError):
            field = None
        if not bad and field not in {k for k, _ in args}:
            return ["%s: the document allows this query, the node refused %r, not an argument given"
                    % (where, field)]
    return []


def fields(doc, op):
    """A request body's fields, in words, for the table."""
    rb = resolve(doc, op.get("requestBody", {}))
    content = rb.get("content") or {}
    params = query_params(doc, op)
    if params and not content:
        out = []
        for name, p in params.items():
            sch = resolve(doc, p.get("schema", {}))
            w = "`%s`" % name
            if "minimum" in sch and "maximum" in sch:
                w += " (%s–%s)" % (sch["minimum"], sch["maximum"])
            out.append(w)
        return "query: " + ", ".join(out)
    if "application/json" not in content:
        return ", ".join("`%s`" % m for m in content) or ""
    sch = resolve(doc, content["application/json"].get("schema", {}))
    req = set(sch.get("required", []))
    out = []
    for name, p in (sch.get("properties") or {}).items():
        p = resolve(doc, p)
        w = "`%s`" % name
        if "minimum" in p and "maximum" in p:
            w += " (%s–%s)" % (p["minimum"], p["maximum"])
        if name in req:
            w += " required"
        out.append(w)
    text = ", ".join(out) or "`{}`"
    return text if rb.get("required") else "optional: " + text


def table(doc):
    rows = ["| method and path | operation | what | request |", "|---|---|---|---|"]
    for p, item in doc["paths"].items():
        for m, op in item.items():
            if m == "parameters":
                continue
            rows.append("| `%s %s` | `%s` | %s | %s |" % (
                m.upper(), p, op["operationId"], op.get("summary", "").replace("|", "\\|"),
                fields(doc, op)))
    return "\n".join(rows) + "\n"


def main(argv):
    if len(argv) >= 3 and argv[2] == "--table":
        sys.stdout.write(table(load(argv[1])))
        return 0
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] not in ("--exchanges", "--pushes")):
        sys.stderr.write(__doc__)
        return 2
    try:
        doc, meta = load(argv[1]), load(argv[2])
    except (OSError, ValueError, yaml.YAMLError) as e:
        print("openapi: cannot read the document: %s" % str(e).replace("\n", " "))
        return 1
    errs = check_document(doc, meta)
    n = 0
    if len(argv) == 5 and argv[3] == "--pushes":
        by_type = {}
        for name, item in (doc.get("webhooks") or {}).items():
            sch = item["post"]["requestBody"]["content"]["application/json"]["schema"]
            kind = resolve(doc, sch)["properties"]["type"]["const"]
            by_type[kind] = sch
        with open(argv[4], encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                n += 1
                ev = json.loads(line)["event"]
                sch = by_type.get(ev.get("type"))
                if sch is None:
                    errs.append("push %d: type %r is not among the document's webhooks" % (n, ev.get("type")))
                    continue
                errs += ["push %d: %s" % (n, e) for e in errors_of(doc, sch, ev)]
        if n == 0:
            errs.append("no push was recorded in %s" % argv[4])
    elif len(argv) == 5:
        tpl = templates(doc)
        with open(argv[4], encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    n += 1
                    errs += check_exchange(doc, tpl, json.loads(line))
        if n == 0:
            errs.append("no exchange was recorded in %s" % argv[4])
    for e in errs:
        print("openapi: " + e)
    if errs:
        return 1
    what = "pushes" if len(argv) == 5 and argv[3] == "--pushes" else "exchanges"
    print("openapi: %s is valid%s" % (argv[1], ", and %d %s match it" % (n, what) if n else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
