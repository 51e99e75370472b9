#!/usr/bin/env bash
# Installs what is missing, builds (one progress line; the compiler's output
# goes to build/build.log), and runs the demo.
# Usage: scripts/run-demo.sh [tern demo options, e.g. --keep DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" --quiet "$build"
exec "$root/scripts/demo.sh" "$build/bin/tern" "$@"
