#!/usr/bin/env python3
"""Checks a Sensei certificate without Sensei: an independent implementation
of what `sensei certificate verify` does, with Python's `cryptography`.

    python3 tools/verify_certificate.py certificate.json [--public-key signing.key.pub]

The signature is Ed25519 over the RFC 8785 (JSON Canonicalization Scheme)
form of the certificate's `payload`: object keys sorted, no insignificant
whitespace, strings escaped as ECMAScript's JSON.stringify does, integers in
plain decimal (Sensei's payloads carry no floating-point numbers). Exit 0 when
the signature holds, 1 otherwise.
"""
import argparse
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def canonical(value):
    """RFC 8785 serialisation of the JSON values Sensei signs."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError("floating-point numbers are not expected in a Sensei payload")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        # RFC 8785 sorts by UTF-16 code units.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(value[k]) for k in keys) + "}"
    raise ValueError(f"unexpected JSON value {value!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("certificate")
    ap.add_argument("--public-key", help="trusted key (hex file); default: the key named in the payload")
    args = ap.parse_args()
    with open(args.certificate, "rb") as f:
        cert = json.loads(f.read().decode("utf-8"))
    payload = cert["payload"]
    named = bytes.fromhex(payload["public_key"])
    key = named
    if args.public_key:
        with open(args.public_key) as f:
            key = bytes.fromhex(f.read().strip())
        if key != named:
            print("invalid: signed by a different key than the trusted one")
            return 1
    message = canonical(payload).encode("utf-8")
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(bytes.fromhex(cert["signature"]), message)
    except (InvalidSignature, ValueError) as e:
        print(f"invalid: {type(e).__name__} {e}".strip())
        return 1
    print(f"valid: migration {payload.get('migration_id')} status {payload.get('status')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
