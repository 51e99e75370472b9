#!/usr/bin/env bash
# inbox_next.sh [WAIT-MS]: the oldest unacknowledged message, opened, waiting
# up to WAIT-MS (at most 60000) for one; {"message": null} when none came.
source "$(dirname "$0")/common.sh"
tern_call POST /v1/inbox/next -H "Content-Type: application/json" --data-binary "{\"waitMs\": ${1:-0}}"
