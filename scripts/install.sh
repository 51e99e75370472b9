#!/usr/bin/env bash
# Builds Tern if needed and installs it under PREFIX: tern, tern-node and
# tern-broker in PREFIX/bin, libtern in PREFIX/lib (the binaries find it
# there by themselves), headers, docs and systemd units. Needs no root for
# a prefix you can write to, as the default is.
# Usage: scripts/install.sh [--no-build] [PREFIX]      (default: $HOME/.local)
#   --no-build       install what the build directory holds, without building
#                    (it must be built; the tests use this, so that no build
#                    runs under the binaries other tests are using)
#   TERN_BUILD_DIR   the build directory to use (default: build/ here)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
nobuild=0
if [[ ${1:-} == --no-build ]]; then
  nobuild=1
  shift
fi
case ${1:-} in
  -h | --help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  -*)
    echo "install.sh: unknown option $1; usage: scripts/install.sh [PREFIX]" >&2
    exit 2
    ;;
esac
(($# <= 1)) || { echo "install.sh: one PREFIX at most; usage: scripts/install.sh [PREFIX]" >&2; exit 2; }
[[ -n ${HOME:-} || -n ${1:-} ]] || { echo "install.sh: HOME is not set; give a PREFIX" >&2; exit 2; }
prefix=${1:-"$HOME/.local"}
build=${TERN_BUILD_DIR:-"$root/build"}

if ! mkdir -p "$prefix" 2>/dev/null || [[ ! -w $prefix ]]; then
  echo "install.sh: cannot write to $prefix; give a PREFIX you own (the default is \$HOME/.local)," >&2
  echo "or run it as root for a system prefix: sudo scripts/install.sh $prefix" >&2
  exit 1
fi
prefix=$(cd "$prefix" && pwd)

if ((nobuild)); then
  [[ -x $build/bin/tern && -f $build/cmake_install.cmake ]] ||
    { echo "install.sh: $build is not built; run scripts/build.sh $build, or leave out --no-build" >&2; exit 1; }
else
  "$root/scripts/build.sh" --quiet "$build"
fi
if ! cmake --install "$build" --prefix "$prefix" >"$build/install.log" 2>&1; then
  echo "install.sh: cmake --install failed; the last lines of $build/install.log:" >&2
  tail -n 20 "$build/install.log" >&2
  exit 1
fi
# The installed binaries must run from the prefix alone: no build tree, no
# LD_LIBRARY_PATH.
for b in tern tern-node tern-broker; do
  if ! env -i "$prefix/bin/$b" --help >/dev/null 2>&1; then
    echo "install.sh: the installed $prefix/bin/$b does not run:" >&2
    env -i "$prefix/bin/$b" --help 2>&1 >/dev/null | head -n 5 >&2 || true
    exit 1
  fi
done

libdir=$(dirname "$(find "$prefix" -name 'libtern.so.*' -path "$prefix/lib*" | head -n 1)")
echo "Installed Tern in $prefix:"
echo "  programs   $prefix/bin/tern, tern-node, tern-broker"
echo "  library    $libdir/libtern.so (headers in $prefix/include/tern, pkg-config tern)"
echo "  docs       $prefix/share/doc/tern"
echo "  systemd    $prefix/share/tern/systemd (units to adapt)"
echo "  (every file installed is listed in $build/install_manifest.txt)"
case ":${PATH:-}:" in
  *":$prefix/bin:"*) echo "$prefix/bin is on your PATH: try 'tern demo'." ;;
  *)
    echo
    echo "$prefix/bin is not on your PATH. Add this line to ~/.profile (or ~/.bashrc),"
    echo "then open a new shell, or run it in this one:"
    echo
    echo "  export PATH=\"$prefix/bin:\$PATH\""
    ;;
esac
