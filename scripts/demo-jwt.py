#!/usr/bin/env python3
"""Makes the demo's HS256 secret (once) and a JWT for a demo user who may read the demo
tenants, for `make run`. Writes VAR/demo-jwt-secret and VAR/demo-jwt; prints the token.

The token carries the tenants in a `project_ids` claim, which a standalone deployment (no
MeshHook projects table) reads through auth.project_ids_claim."""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

NAMESPACE = uuid.UUID("6f0b7a52-2d0e-4c59-9b1b-0d6c1c0a7e11")  # as in demo-traffic.py
TENANTS = ["acme", "globex", "initech"]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(secret, claims):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


def main():
    var = sys.argv[1] if len(sys.argv) > 1 else "var"
    os.makedirs(var, exist_ok=True)
    secret_path = os.path.join(var, "demo-jwt-secret")
    if not os.path.exists(secret_path):
        with open(os.open(secret_path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
    secret = open(secret_path).read().strip()
    now = int(time.time())
    token = make_jwt(secret, {
        "sub": str(uuid.uuid5(NAMESPACE, "demo-user")),
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + 30 * 86400,
        "project_ids": [str(uuid.uuid5(NAMESPACE, t)) for t in TENANTS],
    })
    with open(os.path.join(var, "demo-jwt"), "w") as f:
        f.write(token)
    print(token)


if __name__ == "__main__":
    main()
