#!/usr/bin/env bash
# Installs what is missing, builds (one progress line; the compiler's output
# goes to build/build.log), and runs the demo.
# Usage: scripts/run-demo.sh [tern demo options, e.g. --keep DIR]
# TERN_BUILD_DIR=DIR builds there instead of build/ (a second checkout's
# build, or one on another disk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${TERN_BUILD_DIR:-$root/build}"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" --quiet "$build"
exec "$root/scripts/demo.sh" "$build/bin/tern" "$@"
