#!/bin/sh
# Tells a running camsync that cameras changed: ./notify.sh [CAMERA...] (none: all of them).
# Needs CAMSYNC_WEBHOOK_SECRET (camsync's api.webhook_secret_env); CAMSYNC_URL defaults to
# http://127.0.0.1:9180. Signature: HMAC-SHA256 over "<timestamp>.<body>" (see README.md).
set -eu

url="${CAMSYNC_URL:-http://127.0.0.1:9180}/v1/webhook/camera-changed"
key="${CAMSYNC_WEBHOOK_SECRET:?set CAMSYNC_WEBHOOK_SECRET to the webhook key of camsync}"

body='{}'
if [ "$#" -gt 0 ]; then
  body='{"names":['
  sep=''
  for name in "$@"; do
    # Camera names are letters, digits and _ - . / only, so they need no JSON escaping.
    case "$name" in
      '' | *[!A-Za-z0-9_./-]*)
        echo "not a camera name: $name" >&2
        exit 2
        ;;
    esac
    body="$body$sep\"$name\""
    sep=','
  done
  body="$body]}"
fi

ts=$(date +%s)
sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$key" -r | cut -d' ' -f1)
curl -fsS -X POST "$url" \
  -H 'Content-Type: application/json' \
  -H "X-Camsync-Timestamp: $ts" \
  -H "X-Camsync-Signature: sha256=$sig" \
  --data-binary "$body"
