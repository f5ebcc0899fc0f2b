#!/usr/bin/env python3
"""HS256 JWTs for the statistics benchmark: one caller per tenant of generate.sql.

    jwt_tokens.py SECRET OUT [--claim project_ids] [--tenants 100] [--hours 4]

Writes OUT.lua, a Lua table {[project uuid] = token} for statistics.lua, and OUT.json, the
same as a JSON object for open_loop.py. Caller t has the subject
00000000-0000-0000-0002-<t, 12 digits> and lists only project t in the claim, so row level
security gives each request exactly the tenant of its workflow.
"""
import argparse
import base64
import hashlib
import hmac
import json
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict, secret: str) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("secret")
    parser.add_argument("out")
    parser.add_argument("--claim", default="project_ids")
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--hours", type=float, default=4)
    parser.add_argument("--audience", default="authenticated")
    args = parser.parse_args()
    now = int(time.time())
    tokens = {}
    for t in range(args.tenants):
        project = f"00000000-0000-0000-0001-{t:012d}"
        claims = {"sub": f"00000000-0000-0000-0002-{t:012d}", "role": "authenticated",
                  "aud": args.audience, "iat": now, "exp": now + int(args.hours * 3600),
                  args.claim: [project]}
        tokens[project] = make_jwt(claims, args.secret)
    with open(args.out + ".lua", "w") as out:
        out.write("return {\n")
        for project, token in tokens.items():
            out.write(f'  ["{project}"] = "{token}",\n')
        out.write("}\n")
    with open(args.out + ".json", "w") as out:
        json.dump(tokens, out)


if __name__ == "__main__":
    main()
