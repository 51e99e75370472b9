#!/usr/bin/env bash
# The Tern demo: a local federation (CA, broker, four nodes) and one
# resettlement case walked through it, with signed receipts.
# Usage: scripts/demo.sh [PATH_TO_TERN] [tern demo options]
set -euo pipefail
tern=${1:-tern}
shift || true
exec "$tern" demo "$@"
