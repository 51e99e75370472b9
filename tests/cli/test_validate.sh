#!/usr/bin/env bash
# tern example / tern validate: exit codes and output, end to end.
set -euo pipefail

: "${TERN:?TERN must name the tern binary}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# Runs a command, storing its exit status in $rc without tripping set -e.
run() {
	set +e
	"$@" >"$work/out" 2>"$work/err"
	rc=$?
	set -e
}

# Every example is valid, read from standard input and from a file.
for t in case-referral acceptance-decision travel-confirmation receipt; do
	"$TERN" example "$t" | "$TERN" validate "$t" - >"$work/out" || fail "example $t is not valid"
	grep -qx "ok: $t is valid" "$work/out" || fail "no ok line for $t"
	"$TERN" example "$t" >"$work/$t.json"
	"$TERN" validate "$t" "$work/$t.json" >/dev/null || fail "example file $t is not valid"
done

# caseSize that does not match the members: exit 1, the path on standard output.
sed 's/"caseSize": 4/"caseSize": 3/' "$work/case-referral.json" >"$work/size.json"
grep -q '"caseSize": 3' "$work/size.json" || fail "sed did not change caseSize"
run "$TERN" validate case-referral "$work/size.json"
[ "$rc" -eq 1 ] || fail "caseSize mismatch: exit $rc, want 1"
grep -q '^caseSize: must equal the number of members$' "$work/out" || fail "no caseSize line"

# The same with --json.
run "$TERN" validate --json case-referral "$work/size.json"
[ "$rc" -eq 1 ] || fail "--json caseSize mismatch: exit $rc, want 1"
grep -q '"valid": false' "$work/out" || fail "--json: no valid false"
grep -q '"path": "caseSize"' "$work/out" || fail "--json: no caseSize path"
run "$TERN" validate --json receipt "$work/receipt.json"
[ "$rc" -eq 0 ] || fail "--json valid receipt: exit $rc"
grep -q '"valid": true' "$work/out" || fail "--json: no valid true"

# Messages name paths and rules, never values (the data is personal).
sed 's/"dateOfBirth": "1985-11-30"/"dateOfBirth": "1985-02-30"/' "$work/case-referral.json" \
	>"$work/dob.json"
run "$TERN" validate case-referral "$work/dob.json"
[ "$rc" -eq 1 ] || fail "bad date of birth: exit $rc, want 1"
grep -q '^members\[1\]\.dateOfBirth: must be a real date YYYY-MM-DD$' "$work/out" ||
	fail "no dateOfBirth line"
if grep -q '1985-02-30' "$work/out" "$work/err"; then
	fail "a field value was echoed"
fi

# A wrong JSON type names the path.
sed 's/"sex": "M"/"sex": 7/' "$work/case-referral.json" >"$work/type.json"
run "$TERN" validate case-referral "$work/type.json"
[ "$rc" -eq 1 ] || fail "wrong type: exit $rc, want 1"
grep -q '^members\[1\]\.sex: expected a string$' "$work/out" || fail "no wrong-type line"

# Malformed JSON: exit 1 with line:column, and no fragment of the input.
printf '{\n  "caseId": Samira\n}\n' >"$work/bad.json"
run "$TERN" validate case-referral "$work/bad.json"
[ "$rc" -eq 1 ] || fail "bad JSON: exit $rc, want 1"
grep -q '^2:[0-9]*: ' "$work/out" || fail "no line:column for bad JSON"
if grep -q 'Samira' "$work/out" "$work/err"; then
	fail "bad JSON: input echoed"
fi
run "$TERN" validate case-referral - </dev/null
[ "$rc" -eq 1 ] || fail "empty input: exit $rc, want 1"

# Unknown type: usage error for both commands.
run "$TERN" validate no-such-type "$work/receipt.json"
[ "$rc" -eq 2 ] || fail "validate unknown type: exit $rc, want 2"
run "$TERN" example no-such-type
[ "$rc" -eq 2 ] || fail "example unknown type: exit $rc, want 2"
grep -q 'case-referral' "$work/err" || fail "example unknown type: no list of types"

# Missing arguments and a missing file.
run "$TERN" validate case-referral
[ "$rc" -eq 2 ] || fail "validate without FILE: exit $rc, want 2"
run "$TERN" validate case-referral "$work/does-not-exist.json"
[ "$rc" -eq 3 ] || fail "missing file: exit $rc, want 3"

# Help goes to standard output with examples.
"$TERN" validate --help | grep -q 'Examples:' || fail "validate --help"
"$TERN" example --help | grep -q 'Examples:' || fail "example --help"

echo "ok"
