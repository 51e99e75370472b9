#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$build"
exec "$root/scripts/demo.sh" "$build/bin/tern"
