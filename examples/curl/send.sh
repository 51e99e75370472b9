#!/usr/bin/env bash
# send.sh TYPE TO BODY-FILE [CLIENT-REF]: sends a message; prints {"messageId"}.
#   TERN_URL=http://127.0.0.1:7713 TERN_TOKEN_FILE=fed/unhcr/http.token \
#     examples/curl/send.sh case-referral sweden referral.json ref-0001
source "$(dirname "$0")/common.sh"
[[ $# -ge 3 ]] || { echo "usage: send.sh TYPE TO[,TO...] BODY-FILE [CLIENT-REF]" >&2; exit 2; }
jq -n --arg type "$1" --arg to "$2" --arg ref "${4:-}" --slurpfile body "$3" \
  '{type: $type, to: ($to | split(",")), body: $body[0]} + (if $ref == "" then {} else {clientRef: $ref} end)' |
  tern_call POST /v1/messages -H "Content-Type: application/json" --data-binary @-
