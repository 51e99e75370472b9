#!/usr/bin/env bash
# A message that answers another names it in its body (referralId, ...). The
# --help example works: `tern example TYPE --reply-to ID | tern send` is
# delivered and its header's in-reply-to is that id, taken from the body; a
# --reply-to that is not the body's reference is refused naming both; and
# `tern example` refuses --reply-to for a type that answers nothing.
source "$(dirname "$0")/lib.sh"
fed_make
for n in broker unhcr sweden iom; do start "$n"; done
for n in unhcr sweden iom; do wait_for 20 "$n to connect" connected "$n"; done

ref=$("$TERN" example case-referral | "$TERN" send -c "$(conf unhcr)" --to sweden --wait 20 case-referral - | cut -d' ' -f1)
[[ $ref =~ ^[0-9a-f-]{36}$ ]] || fail "no referral id"
"$TERN" example acceptance-decision --reply-to "$ref" >"$WORK/dec.json"
grep -q "\"referralId\": \"$ref\"" "$WORK/dec.json" || fail "tern example --reply-to did not set referralId"
out=$("$TERN" send -c "$(conf sweden)" --to unhcr,iom --wait 20 acceptance-decision "$WORK/dec.json") ||
  fail "the --help example's decision was not delivered: $out"
dec=${out%% *}
[[ $out == "$dec delivered" ]] || fail "the decision is not delivered: $out"
"$TERN" inbox -c "$(conf unhcr)" show "$dec" >"$WORK/show.json" 2>&1 || true
python3 - "$WORK/show.json" "$ref" <<'PY' || fail "the decision's header does not reply to the referral"
import json, sys
m = json.load(open(sys.argv[1]))
h = m.get("header") or m.get("message", {}).get("header")
assert h and h.get("inReplyTo") == sys.argv[2], h
PY

other=01a20000-0000-7000-8000-000000000000
out=$("$TERN" send -c "$(conf sweden)" --to unhcr --reply-to "$other" acceptance-decision "$WORK/dec.json" 2>&1) &&
  fail "a --reply-to other than the body's referralId was taken"
grep -q "$other" <<<"$out" && grep -q "$ref" <<<"$out" && grep -q "referral_id" <<<"$out" ||
  fail "the refusal does not name both ids and the field: $out"
rc=0; "$TERN" example case-referral --reply-to "$ref" >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "tern example case-referral --reply-to exited $rc, want 2"
echo "it test_reply_to: ok"
