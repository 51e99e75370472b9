#!/usr/bin/env bash
# The federation PKI end to end: dev-federation layout and modes, OpenSSL's own
# verdict on our certificates and CRL before and after revocation, and the
# step-by-step operator flow (keygen, ca init, issue, directory).
set -euo pipefail

: "${TERN:?set TERN to the tern binary}"
command -v openssl >/dev/null || { echo "openssl is required" >&2; exit 1; }

work=$(mktemp -d /tmp/tern-cli-pki-XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
mode() { stat -c %a "$1"; }
expect_mode() { [[ $(mode "$1") == "$2" ]] || fail "$1 has mode $(mode "$1"), want $2"; }
expect_rc() {
	local want=$1; shift
	local rc=0
	"$@" >"$work/out" 2>"$work/err" || rc=$?
	[[ $rc == "$want" ]] || { cat "$work/out" "$work/err" >&2; fail "'$*' exited $rc, want $want"; }
}

# --- dev-federation --------------------------------------------------------
fed=$work/fed
"$TERN" dev-federation "$fed" --base-port 7755 >"$work/summary"
grep -q unhcr "$work/summary" || fail "summary does not mention unhcr"

for f in ca/ca.key ca/ca.crt ca/crl.pem ca/ca.json ca/directory.tdir \
	broker/broker.conf broker/node.crt broker/node.key broker/seal.key broker/curve.key; do
	[[ -f $fed/$f ]] || fail "missing $f"
done
expect_mode "$fed/ca/ca.key" 600
for n in broker unhcr iom sweden portugal; do
	expect_mode "$fed/$n" 700
	for k in node.key seal.key curve.key; do
		expect_mode "$fed/$n/$k" 600
	done
	[[ -f $fed/$n/node.crt ]] || fail "missing $n/node.crt"
	[[ $n == broker || -f $fed/$n/node.conf ]] || fail "missing $n/node.conf"
done
expect_mode "$fed/ca" 700

# Config files: the exact keys, paths relative to the file.
grep -qx 'id = unhcr' "$fed/unhcr/node.conf" || fail "node.conf id"
grep -qx 'ca = ../ca/ca.crt' "$fed/unhcr/node.conf" || fail "node.conf ca path"
grep -qx 'directory = ../ca/directory.tdir' "$fed/sweden/node.conf" || fail "node.conf directory"
grep -qx 'endpoint = tcp://127.0.0.1:7755' "$fed/iom/node.conf" || fail "node.conf endpoint"
grep -qx 'listen = tcp://127.0.0.1:7755' "$fed/broker/broker.conf" || fail "broker.conf listen"
grep -qx 'control_socket = data/control.sock' "$fed/broker/broker.conf" || fail "broker.conf socket"
grep -qx 'curve_key = curve.key' "$fed/broker/broker.conf" || fail "broker.conf curve_key"

# Certificate profile as OpenSSL reads it.
openssl x509 -in "$fed/unhcr/node.crt" -noout -subject -nameopt RFC2253 >"$work/subj"
grep -q 'CN=unhcr' "$work/subj" && grep -q 'OU=referrer' "$work/subj" && grep -q 'O=UNHCR' "$work/subj" ||
	fail "unexpected subject: $(cat "$work/subj")"
openssl x509 -in "$fed/portugal/node.crt" -noout -ext subjectAltName | grep -q 'URI:urn:tern:node:portugal' ||
	fail "portugal certificate lacks its SAN"
openssl x509 -in "$fed/ca/ca.crt" -noout -ext basicConstraints | grep -q 'CA:TRUE, pathlen:0' ||
	fail "CA basicConstraints"

# OpenSSL accepts every certificate, with and without the CRL.
for n in broker unhcr iom sweden portugal; do
	openssl verify -CAfile "$fed/ca/ca.crt" "$fed/$n/node.crt" >/dev/null ||
		fail "openssl verify $n"
	openssl verify -crl_check -CAfile "$fed/ca/ca.crt" -CRLfile "$fed/ca/crl.pem" \
		"$fed/$n/node.crt" >/dev/null || fail "openssl verify -crl_check $n"
done

# A non-empty DIR is never overwritten.
expect_rc 3 "$TERN" dev-federation "$fed"
grep -q 'not empty' "$work/err" || fail "no clear error for a non-empty DIR"
expect_rc 2 "$TERN" dev-federation
expect_rc 2 "$TERN" dev-federation "$work/x" --base-port 0

# --- revocation ------------------------------------------------------------
"$TERN" ca revoke --ca "$fed/ca" --node unhcr --reason key-compromise >/dev/null
if openssl verify -crl_check -CAfile "$fed/ca/ca.crt" -CRLfile "$fed/ca/crl.pem" \
	"$fed/unhcr/node.crt" >"$work/out" 2>&1; then
	fail "openssl still accepts the revoked unhcr certificate"
fi
grep -q 'revoked' "$work/out" || fail "openssl did not say revoked: $(cat "$work/out")"
openssl crl -in "$fed/ca/crl.pem" -noout -text | grep -q 'Key Compromise' || fail "CRL reason"
openssl verify -crl_check -CAfile "$fed/ca/ca.crt" -CRLfile "$fed/ca/crl.pem" \
	"$fed/iom/node.crt" >/dev/null || fail "iom should still verify"
expect_rc 3 "$TERN" ca revoke --ca "$fed/ca" --node unhcr
"$TERN" ca list --ca "$fed/ca" --json >"$work/list.json"
grep -q '"revoked"' "$work/list.json" || fail "list does not show the revocation"
"$TERN" ca list --ca "$fed/ca" | grep -E '^[0-9a-f]+ +unhcr' | grep -q revoked || fail "list text"

# --- step by step, as an operator would ------------------------------------
ca=$work/ca
"$TERN" ca init --ca "$ca" --federation resettlement --days 365 >/dev/null
expect_mode "$ca/ca.key" 600
expect_mode "$ca" 700
expect_rc 3 "$TERN" ca init --ca "$ca" --federation again

"$TERN" keygen --node sweden --out "$work/sweden" >/dev/null
"$TERN" keygen --node hub --out "$work/hub" --json >"$work/hub.json"
grep -q '"curve_public"' "$work/hub.json" || fail "keygen --json"
expect_mode "$work/sweden/node.key" 600
expect_mode "$work/sweden/seal.key" 600
expect_mode "$work/sweden/curve.key" 600
expect_rc 3 "$TERN" keygen --node sweden --out "$work/sweden"   # never overwrites
expect_rc 2 "$TERN" keygen --node 'Bad Id' --out "$work/bad"

"$TERN" ca issue --ca "$ca" --request "$work/sweden/node.req.json" \
	--agency 'Sweden Migration Agency' --roles state --out "$work/sweden/node.crt" >/dev/null
"$TERN" ca issue --ca "$ca" --request "$work/hub/node.req.json" --agency Hub \
	--roles broker --endpoint tcp://127.0.0.1:7700 --out "$work/hub/node.crt" --json >"$work/iss.json"
grep -q '"serial"' "$work/iss.json" || fail "issue --json"
openssl verify -crl_check -CAfile "$ca/ca.crt" -CRLfile "$ca/crl.pem" "$work/sweden/node.crt" >/dev/null ||
	fail "openssl verify of the step-by-step certificate"
# The certificate from one federation does not verify under another's CA.
if openssl verify -CAfile "$ca/ca.crt" "$fed/iom/node.crt" >/dev/null 2>&1; then
	fail "a certificate from another CA verified"
fi

# Issuing twice, bad roles, a damaged request.
expect_rc 3 "$TERN" ca issue --ca "$ca" --request "$work/sweden/node.req.json" \
	--agency X --roles state --out "$work/dup.crt"
expect_rc 2 "$TERN" ca issue --ca "$ca" --request "$work/sweden/node.req.json" \
	--agency X --roles admin
expect_rc 2 "$TERN" ca issue --ca "$ca" --request "$work/sweden/node.req.json"
"$TERN" keygen --node iom --out "$work/iom" >/dev/null
sed -i 's/"node_id": "iom"/"node_id": "imo"/' "$work/iom/node.req.json"
expect_rc 3 "$TERN" ca issue --ca "$ca" --request "$work/iom/node.req.json" --agency IOM --roles movement
grep -q 'proof of possession' "$work/err" || fail "no clear error for a tampered request"

# --until: an explicit end, in the future and within the CA's; not with --days.
"$TERN" keygen --node lisbon --out "$work/lisbon" >/dev/null
expect_rc 2 "$TERN" ca issue --ca "$ca" --request "$work/lisbon/node.req.json" --agency L \
	--roles state --until tomorrow
expect_rc 2 "$TERN" ca issue --ca "$ca" --request "$work/lisbon/node.req.json" --agency L \
	--roles state --until 2030-01-01T00:00:00Z --days 5
expect_rc 3 "$TERN" ca issue --ca "$ca" --request "$work/lisbon/node.req.json" --agency L \
	--roles state --until 2020-01-01T00:00:00Z
grep -q 'in the future' "$work/err" || fail "no clear error for an --until in the past"
end=$(date -u -d '+200 days' +%Y-%m-%dT12:34:56Z)
"$TERN" ca issue --ca "$ca" --request "$work/lisbon/node.req.json" --agency L --roles state \
	--until "$end" --out "$work/lisbon/node.crt" >/dev/null
[[ "$(openssl x509 -in "$work/lisbon/node.crt" -noout -enddate)" == "notAfter=$(date -u -d "$end" '+%b %e %H:%M:%S %Y GMT')" ]] ||
	fail "--until did not set the certificate's end to $end"

# Directory versions only go up.
v1=$("$TERN" ca directory --ca "$ca" 2>/dev/null)
v2=$("$TERN" ca directory --ca "$ca" --out "$work/published.tdir" 2>/dev/null)
[[ $v1 =~ ^[0-9]+$ && $v2 =~ ^[0-9]+$ ]] || fail "directory did not print a version ($v1, $v2)"
(( v2 > v1 )) || fail "directory version did not increase ($v1 -> $v2)"
[[ -s $ca/directory.tdir && -s $work/published.tdir ]] || fail "directory files missing"
"$TERN" ca directory --ca "$ca" --json | grep -q "\"version\": $((v2 + 1))" || fail "directory --json"

# A fresh CRL gets the next number.
n1=$(openssl crl -in "$ca/crl.pem" -noout -crlnumber | sed 's/.*=//')
"$TERN" ca crl --ca "$ca" --days 7 >/dev/null
n2=$(openssl crl -in "$ca/crl.pem" -noout -crlnumber | sed 's/.*=//')
(( n2 == n1 + 1 )) || fail "CRL number $n1 -> $n2"

# A readable CA key is refused, with the fix in the message.
chmod 644 "$ca/ca.key"
expect_rc 3 "$TERN" ca list --ca "$ca"
grep -q 'chmod 600' "$work/err" || fail "no chmod hint for a readable CA key"
chmod 600 "$ca/ca.key"

# Help, usage errors.
for c in "ca" "ca init" "ca issue" "ca revoke" "ca crl" "ca directory" "ca list" keygen dev-federation; do
	# shellcheck disable=SC2086
	"$TERN" $c --help | grep -q 'Example' || fail "'tern $c --help' shows no example"
done
expect_rc 2 "$TERN" ca
expect_rc 2 "$TERN" ca frobnicate --ca "$ca"
expect_rc 2 "$TERN" ca list
expect_rc 2 "$TERN" ca crl --ca "$ca" --days zero
expect_rc 3 "$TERN" ca list --ca "$work/nowhere"

echo "cli test_pki: ok"
