#!/usr/bin/env bash
# status.sh MSGID: what became of a message this node sent.
source "$(dirname "$0")/common.sh"
[[ $# -eq 1 ]] || { echo "usage: status.sh MSGID" >&2; exit 2; }
tern_call GET "/v1/messages/$1"
