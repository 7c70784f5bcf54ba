#!/usr/bin/env python3
"""Tells a running camsync that cameras changed: ./notify.py [CAMERA...] (none: all of them).

Needs CAMSYNC_WEBHOOK_SECRET (camsync's api.webhook_secret_env); CAMSYNC_URL defaults to
http://127.0.0.1:9180. Signature: HMAC-SHA256 over "<timestamp>.<body>" (see README.md).
Standard library only.
"""
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request


def signed_request(url, key, names):
    if not names:
        payload = {}
    elif len(names) == 1:
        payload = {"name": names[0]}
    else:
        payload = {"names": names}
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-Camsync-Timestamp": timestamp,
        "X-Camsync-Signature": "sha256=" + mac.hexdigest(),
    }
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def main():
    key = os.environ.get("CAMSYNC_WEBHOOK_SECRET")
    if not key:
        sys.exit("set CAMSYNC_WEBHOOK_SECRET to camsync's webhook key")
    base = os.environ.get("CAMSYNC_URL", "http://127.0.0.1:9180")
    request = signed_request(base + "/v1/webhook/camera-changed", key, sys.argv[1:])
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.read().decode())
    except urllib.error.HTTPError as e:
        sys.exit(f"camsync answered {e.code}: {e.read().decode()}")


if __name__ == "__main__":
    main()
