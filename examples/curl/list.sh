#!/usr/bin/env bash
# list.sh [QUERY]: sent and received messages, one page; QUERY as docs/api.md
# says, such as "direction=sent&caseId=AMM-26C00417&limit=20". Follow
# nextCursor with "...&cursor=C" for the next page.
source "$(dirname "$0")/common.sh"
tern_call GET "/v1/messages${1:+?$1}"
