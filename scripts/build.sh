#!/usr/bin/env bash
# Configures and builds Tern. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
# TERN_SANITIZE=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build"}
shift || true
args=()
[[ "${TERN_SANITIZE:-0}" == 1 ]] && args+=(-DTERN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
cmake -S "$root" -B "$build" "${args[@]}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)" -- --no-print-directory -s
