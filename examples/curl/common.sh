# Shared by the curl examples: TERN_URL (the node's HTTP API, e.g.
# http://127.0.0.1:7713) and TERN_TOKEN_FILE (its http.token, read with the
# white space around it stripped). Each script prints the node's JSON answer;
# a refusal (problem details) goes to stderr, with exit status 1.
set -euo pipefail
: "${TERN_URL:?set TERN_URL to the node's HTTP API, such as http://127.0.0.1:7713}"
: "${TERN_TOKEN_FILE:?set TERN_TOKEN_FILE to the node's http.token}"
TOKEN=$(tr -d '[:space:]' <"$TERN_TOKEN_FILE")
# tern_call METHOD PATH [curl args...]
tern_call() {
  local method=$1 path=$2 out code
  shift 2
  out=$(mktemp)
  code=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $TOKEN" \
    "$@" "$TERN_URL$path")
  if [[ $code == 2* ]]; then
    cat "$out"; rm -f "$out"
  else
    cat "$out" >&2; rm -f "$out"; return 1
  fi
}
