#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite.
# Usage: scripts/run-tests.sh [BUILD_DIR]   (TERN_SANITIZE=1 for the ASan+UBSan build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build"}
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$build"
cd "$build"
# The sanitizer run walks the same attachment paths with a smaller file: the
# 300 MiB of the acceptance run in the plain suite, and four of them under
# ASan would take most of a test's 600 s on a CI machine.
if [[ -n ${TERN_SANITIZE:-} ]]; then export TERN_ATTACH_MIB=${TERN_ATTACH_MIB:-96}; fi
ctest --output-on-failure -j"$(nproc)" --timeout 300
