#!/usr/bin/env bash
# ack.sh MSGID: acknowledges an inbox message (it stays until then).
source "$(dirname "$0")/common.sh"
[[ $# -eq 1 ]] || { echo "usage: ack.sh MSGID" >&2; exit 2; }
tern_call POST "/v1/inbox/$1/ack"
