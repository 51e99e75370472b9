#!/usr/bin/env bash
# scripts/install.sh PREFIX puts tern, tern-node and tern-broker in
# PREFIX/bin, runnable from the prefix alone (no build tree, no
# LD_LIBRARY_PATH: a clean environment), with one line of build progress
# and the exact PATH line to add; and `cmake --install` to a fresh prefix
# gives a usable library: a program built against it through pkg-config
# alone compiles, links and runs.
set -euo pipefail
: "${TERN_BIN_DIR:?}" "${TERN_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# --no-build: a build here would reconfigure and relink the binaries other
# tests are running (a fresh clone's CI saw "Permission denied" on one), and
# in the sanitizer build reconfigure it without the sanitizers.
out=$(PATH=/usr/bin:/bin TERN_BUILD_DIR="$TERN_BIN_DIR" "$TERN_SOURCE_DIR/scripts/install.sh" --no-build "$tmp/p")
echo "$out"
grep -q "Building C object" <<<"$out" && fail "install.sh printed the compiler's progress"
grep -qxF "  export PATH=\"$tmp/p/bin:\$PATH\"" <<<"$out" || fail "install.sh did not print the PATH line"
for b in tern tern-node tern-broker; do
  [[ -x "$tmp/p/bin/$b" ]] || fail "$b not installed in $tmp/p/bin"
  # The build tree moved away cannot be what makes it run.
  env -i "$tmp/p/bin/$b" --help >"$tmp/help" 2>&1 || { cat "$tmp/help" >&2; fail "installed $b --help failed"; }
  grep -q "Usage: $b" "$tmp/help" || fail "installed $b --help printed no usage"
  lib=$(env -i ldd "$tmp/p/bin/$b" | awk '$1 ~ /^libtern\.so/ {print $3}')
  [[ -n $lib && $(realpath "$lib") == "$tmp/p/lib/"* ]] || fail "installed $b takes libtern from '$lib', not the prefix"
done
# On PATH already: no line to add.
out=$(PATH="$tmp/p/bin:/usr/bin:/bin" TERN_BUILD_DIR="$TERN_BIN_DIR" "$TERN_SOURCE_DIR/scripts/install.sh" --no-build "$tmp/p")
grep -q "export PATH" <<<"$out" && fail "install.sh asked to add a directory already on PATH"
[[ $(env -i PATH="$tmp/p/bin" tern --version) == "tern "* ]] || fail "tern from PATH does not run"

cmake --install "$TERN_BIN_DIR" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name tern.pc | head -1)")
[[ -f "$pc/tern.pc" ]] || { echo "no tern.pc installed" >&2; exit 1; }
[[ -x "$tmp/prefix/bin/tern" ]] || { echo "tern not installed" >&2; exit 1; }

cat > "$tmp/consumer.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <tern/error.h>
#include <tern/uuid.h>
#include <tern/v1/messages.pb-c.h>
int main(void)
{
	char id[37];
	if (tern_uuid_v7(id) != TERN_OK || !tern_uuid_valid(id))
		return 1;
	if (strcmp(tern_errcode_name(TERN_EBADSIG), "bad-signature") != 0)
		return 1;
	printf("%s\n", tern__v1__case_referral__descriptor.name);
	return 0;
}
C
export PKG_CONFIG_PATH="$pc"
# A sanitizer build of the library needs its runtime in the consumer too.
san=()
if grep -q '^TERN_SANITIZE:BOOL=ON' "$TERN_BIN_DIR/CMakeCache.txt"; then
  san=(-fsanitize=address,undefined)
fi
# shellcheck disable=SC2046
cc -std=c11 "${san[@]}" -o "$tmp/consumer" "$tmp/consumer.c" $(pkg-config --cflags --libs tern)
out=$(LD_LIBRARY_PATH="$(pkg-config --variable=libdir tern)" "$tmp/consumer")
[[ "$out" == "tern.v1.CaseReferral" ]] || { echo "consumer printed '$out'" >&2; exit 1; }
echo "cli test_install: ok"
