#!/usr/bin/env bash
# Run the seed checklist's `az` sequence (mcp-server-checklist §1, steps 1–8 and the `az ad app
# show` check) with the real Azure CLI against `entraform emulator --tls` (VALIDATORS.md §e–§f).
#
# Needs: azure-cli in a venv (default `.venv-az`, git-ignored):
#   python3 -m venv .venv-az && .venv-az/bin/pip install azure-cli
# and a built binary (`cargo build`). Not part of CI. Prints each step, its wall time, and the
# emulator's request log (method, path, status, server-side ms). Never prints the new secret:
# step 8 reports only its length and shape.
set -euo pipefail
cd "$(dirname "$0")/.."

AZ=${AZ:-.venv-az/bin/az}
BIN=${ENTRAFORM_BIN:-target/debug/entraform}
[ -x "$AZ" ] || { echo "az not found at $AZ (set AZ=...)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "entraform binary not found at $BIN (cargo build first)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/entraform-az-XXXXXX")
EMU=
cleanup() { [ -n "$EMU" ] && kill "$EMU" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" emulator --tls --verified-domain axelabs.ai --ca-cert-out "$WORK/ca.pem" \
  >"$WORK/exports" 2>"$WORK/emulator.log" &
EMU=$!
for _ in $(seq 100); do grep -q ENTRAFORM_CA_CERT "$WORK/exports" 2>/dev/null && break; sleep 0.05; done
eval "$(cat "$WORK/exports")"
G=$ENTRAFORM_GRAPH_URL
CONTROL=${G%/v1.0}/_emulator
# The /_emulator/ controls need the control token; keep it out of az's environment, and out of
# curl's argv (the header goes in through a config on stdin).
CONTROL_TOKEN=$ENTRAFORM_EMULATOR_CONTROL_TOKEN
export -n ENTRAFORM_EMULATOR_CONTROL_TOKEN
control() { # control CURL-ARGS...
  printf 'header = "Authorization: Bearer %s"\n' "$CONTROL_TOKEN" |
    curl -sf --cacert "$ENTRAFORM_CA_CERT" -K - "$@"
}

export AZURE_CONFIG_DIR=$WORK/azcfg AZURE_CORE_COLLECT_TELEMETRY=false AZURE_CORE_NO_COLOR=true
export REQUESTS_CA_BUNDLE=$ENTRAFORM_CA_CERT

step() { # step NAME CMD...  — run, time, show output
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$WORK/step.out" 2>"$WORK/step.err" || { echo "FAILED: $name"; cat "$WORK/step.out" "$WORK/step.err"; exit 1; }
  t1=$(date +%s.%N)
  printf '%-44s %6.2f s\n' "$name" "$(echo "$t1 - $t0" | bc)"
}

echo "== setup (not timed as part of the sequence)"
step "az config set core.instance_discovery=false" "$AZ" config set core.instance_discovery=false
step "az cloud register (emulator ARM metadata)" "$AZ" cloud register -n EntraformEmulator --endpoint-resource-manager "$AZURE_AUTHORITY_HOST/"
step "az cloud set" "$AZ" cloud set -n EntraformEmulator
# The emulator's throw-away operator secret goes through argv here because `az login` takes it
# that way; it is valid only for this emulator process.
step "az login --service-principal" "$AZ" login --service-principal -u "$AZURE_CLIENT_ID" -p "$AZURE_CLIENT_SECRET" --tenant "$AZURE_TENANT_ID" --allow-no-subscriptions
control -X DELETE "$CONTROL/requests" >/dev/null

echo "== the checklist sequence"
T0=$(date +%s.%N)
step "1a az ad app create" "$AZ" ad app create --display-name "Blueprint MCP" --sign-in-audience AzureADMyOrg --query appId -o tsv
APP_ID=$(cat "$WORK/step.out")
step "   az ad app show (object id)" "$AZ" ad app show --id "$APP_ID" --query id -o tsv
OBJ=$(cat "$WORK/step.out")
step "1b az ad sp create" "$AZ" ad sp create --id "$APP_ID"
step "2  az ad app update --identifier-uris" "$AZ" ad app update --id "$APP_ID" --identifier-uris "https://axe.axelabs.ai/blueprint/mcp"
step "3  az rest PATCH requestedAccessTokenVersion" "$AZ" rest --method PATCH --uri "$G/applications/$OBJ" --body '{"api":{"requestedAccessTokenVersion":2}}'
SCOPE_ID=$(python3 -c 'import uuid; print(uuid.uuid4())')
step "4  az rest PATCH oauth2PermissionScopes" "$AZ" rest --method PATCH --uri "$G/applications/$OBJ" --body "{\"api\":{\"oauth2PermissionScopes\":[{\"id\":\"$SCOPE_ID\",\"value\":\"mcp.access\",\"type\":\"User\",\"isEnabled\":true,\"adminConsentDisplayName\":\"Access Blueprint MCP\",\"userConsentDisplayName\":\"Access Blueprint MCP\"}]}}"
step "5  az rest PATCH web.redirectUris" "$AZ" rest --method PATCH --uri "$G/applications/$OBJ" --body '{"web":{"redirectUris":["https://claude.ai/api/mcp/auth_callback","https://claude.com/api/mcp/auth_callback"]}}'
step "6  az rest PATCH requiredResourceAccess" "$AZ" rest --method PATCH --uri "$G/applications/$OBJ" --body '{"requiredResourceAccess":[{"resourceAppId":"00000003-0000-0000-c000-000000000000","resourceAccess":[{"id":"e1fe6dd8-ba31-4d61-89e7-88639da4683d","type":"Scope"}]}]}'
step "7  az rest PATCH enableIdTokenIssuance" "$AZ" rest --method PATCH --uri "$G/applications/$OBJ" --body '{"web":{"implicitGrantSettings":{"enableIdTokenIssuance":true}}}'
step "8  az ad app credential reset" "$AZ" ad app credential reset --id "$APP_ID" --years 2 --query password -o tsv
SECRET_LEN=$(tr -d '\n' <"$WORK/step.out" | wc -c)
SHAPE=$(tr -d '\n' <"$WORK/step.out" | grep -cE '^[A-Za-z0-9~._-]{40}$' || true)
: >"$WORK/step.out"
step "   az ad app show (checklist check)" "$AZ" ad app show --id "$APP_ID" --query "{accessTokenAcceptedVersion:api.requestedAccessTokenVersion, identifierUris:identifierUris, signInAudience:signInAudience}" -o json
T1=$(date +%s.%N)
cat "$WORK/step.out"
printf 'new secret: %s characters, Entra shape: %s\n' "$SECRET_LEN" "$([ "$SHAPE" = 1 ] && echo yes || echo no)"
printf 'sequence wall time: %.2f s\n' "$(echo "$T1 - $T0" | bc)"

echo "== what the emulator saw (method path status server-ms)"
control "$CONTROL/requests" >"$WORK/log.json"
python3 - "$WORK/log.json" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
for r in log:
    q = ("?" + r["query"]) if r["query"] else ""
    print("%-6s %s  %d  %.2f" % (r["method"], (r["path"] + q)[:110], r["status"], r["durationMs"]))
print("%d requests, server time %.1f ms" % (len(log), sum(r["durationMs"] for r in log)))
PY
