#!/usr/bin/env bash
# The Tern demo: a local federation, its PKI, and the three business messages.
# Usage: scripts/demo.sh [PATH_TO_TERN]
set -euo pipefail
tern=${1:-tern}
work=$(mktemp -d -t tern-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
fed="$work/fed"

step() { printf '\n== %s\n' "$*"; }

step "A local federation: CA, broker 'hub', nodes unhcr, iom, sweden, portugal"
"$tern" dev-federation "$fed"

step "Every node certificate chains to the federation CA and is not revoked"
for n in unhcr iom sweden portugal broker; do
  printf '%-9s ' "$n"
  openssl verify -crl_check -CAfile "$fed/ca/ca.crt" -CRLfile "$fed/ca/crl.pem" "$fed/$n/node.crt" \
    | sed "s|$fed/||"
done

step "The federation directory, signed by the CA"
"$tern" ca list --ca "$fed/ca"

step "Business messages: each example validates"
for t in case-referral acceptance-decision travel-confirmation; do
  "$tern" example "$t" | "$tern" validate "$t" -
done

step "A referral whose caseSize does not match its members is refused, by field path"
"$tern" example case-referral | sed 's/"caseSize": [0-9]*/"caseSize": 9/' \
  | "$tern" validate case-referral - || true

step "Revoking a node: the CRL now refuses its certificate"
"$tern" ca revoke --ca "$fed/ca" --node portugal --reason "demo: key compromise drill"
openssl verify -crl_check -CAfile "$fed/ca/ca.crt" -CRLfile "$fed/ca/crl.pem" "$fed/portugal/node.crt" \
  2>&1 | sed "s|$fed/||" || true

printf '\nDemo finished; its files are removed on exit.\n'
