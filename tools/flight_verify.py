#!/usr/bin/env python3
"""Stream verified tables from a Sensei public Flight endpoint and check them.

    python3 tools/flight_verify.py grpc://127.0.0.1:PORT --token TOKEN [--migration ID] [--table T]
    python3 tools/flight_verify.py grpc+tls://HOST:PORT --tls-root CERT.pem --token TOKEN

For every dataset listed (one per target table of a migration whose
certificate is PASS), the batches of every endpoint are streamed with
pyarrow.flight from the endpoint's first location (the node that holds the
partition; the next location when it refuses; the endpoint itself when it
names none), and the table's order-independent digest and Merkle root are
computed here again from what arrived, with the canonical row encoding of
`agents/contracts/src/digest.rs` (written down there byte by byte; nothing of Sensei's
code is used). They are compared with the figures the dataset's FlightInfo
carries (`app_metadata`: the certificate's `digest`, `merkle_root`,
`merkle_key`, `rows`), which are the signed certificate's own: check the
certificate itself with tools/verify_certificate.py and its SHA-256 against
`certificate_sha256`.

Prints one JSON document: per table the rows received, the digest and root
computed, and whether they match. Exit 0 when every table matches, 1 when one
does not, 2 when the endpoint refuses the call (no token, a wrong one).
The token may come from SENSEI_TOKEN instead of --token.
"""

import argparse
import hashlib
import json
import os
import struct
import sys
from decimal import Decimal, localcontext

import pyarrow as pa
import pyarrow.flight as flight

BUCKETS = 256


def _len_bytes(tag, data):
    return b"\x01" + tag + struct.pack(">Q", len(data)) + data


def _i64(v):
    return b"\x01i" + struct.pack(">q", v)


def _f64(v):
    if v != v:  # NaN: one canonical bit pattern
        bits = 0x7FF8000000000000
    else:
        if v == 0.0:
            v = 0.0  # -0.0 as 0.0
        bits = struct.unpack(">Q", struct.pack(">d", v))[0]
    return b"\x01f" + struct.pack(">Q", bits)


def _micros_factor(unit):
    return {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}[unit]


def column_encoder(array):
    """A function from row index to the canonical bytes of that cell."""
    t = array.type
    valid = array.is_valid().to_pylist()
    if pa.types.is_integer(t):
        values = array.to_pylist()

        def enc(v):
            if -(2**63) <= v < 2**63:
                return _i64(v)
            return b"\x01u" + struct.pack(">Q", v)

    elif pa.types.is_floating(t):
        values = array.to_pylist()
        enc = _f64
    elif pa.types.is_decimal128(t):
        values = array.to_pylist()
        scale = t.scale

        def enc(v):
            with localcontext() as ctx:
                ctx.prec = 100
                scaled = int(Decimal(v).scaleb(scale))
            return b"\x01d" + struct.pack(">b", scale) + scaled.to_bytes(16, "big", signed=True)

    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        values = array.to_pylist()

        def enc(v):
            return _len_bytes(b"s", v.encode("utf-8"))

    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        values = array.to_pylist()

        def enc(v):
            return _len_bytes(b"b", v)

    elif pa.types.is_boolean(t):
        values = array.to_pylist()

        def enc(v):
            return b"\x01t" + (b"\x01" if v else b"\x00")

    elif pa.types.is_date32(t):
        values = array.cast(pa.int32()).to_pylist()

        def enc(v):
            return b"\x01D" + struct.pack(">i", v)

    elif pa.types.is_timestamp(t):
        values = array.cast(pa.int64()).to_pylist()
        factor = _micros_factor(t.unit)

        def enc(v):
            micros = v * factor if factor is not None else int(v / 1000) if v >= 0 else -((-v) // 1000)
            return b"\x01T" + struct.pack(">q", micros)

    else:
        raise SystemExit(
            f"column type {t} has no canonical encoding in this script "
            "(Sensei encodes it as Arrow's display text); compare with `sensei certificate verify --data`"
        )
    return lambda r: enc(values[r]) if valid[r] else b"\x00"


def digests(table, key):
    """(rows, digest hex, merkle root hex) of a pyarrow Table."""
    names = table.column_names
    key_cols = [names.index(k) for k in key if k in names]
    if not key_cols or len(key_cols) != len(key):
        key_cols = list(range(len(names)))
    encoders = [column_encoder(table.column(i).combine_chunks()) for i in range(len(names))]
    total = 0
    buckets = [[0, 0] for _ in range(BUCKETS)]  # rows, sum of row hashes
    for r in range(table.num_rows):
        cells = [e(r) for e in encoders]
        h = int.from_bytes(hashlib.sha256(b"".join(cells)).digest(), "big")
        b = hashlib.sha256(b"".join(cells[c] for c in key_cols)).digest()[0]
        total = (total + h) % 2**256
        buckets[b][0] += 1
        buckets[b][1] = (buckets[b][1] + h) % 2**256
    level = [
        hashlib.sha256(b"\x00" + struct.pack(">Q", n) + s.to_bytes(32, "big")).digest()
        for n, s in buckets
    ]
    while len(level) > 1:
        level = [
            hashlib.sha256(b"\x01" + level[i] + (level[i + 1] if i + 1 < len(level) else level[i])).digest()
            for i in range(0, len(level), 2)
        ]
    return table.num_rows, f"{total:064x}", level[0].hex()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("endpoint")
    ap.add_argument("--token", default=os.environ.get("SENSEI_TOKEN", ""))
    ap.add_argument("--migration", default="")
    ap.add_argument("--table", default="")
    ap.add_argument("--save", default="", help="folder: write each table received as <table>.parquet")
    ap.add_argument("--tls-root", default="", help="PEM file of the root to trust (grpc+tls:// endpoints)")
    args = ap.parse_args()
    root = open(args.tls_root, "rb").read() if args.tls_root else None
    clients = {}

    def client_for(location):
        if location not in clients:
            clients[location] = flight.FlightClient(location, tls_root_certs=root) if root else flight.FlightClient(location)
        return clients[location]

    client = client_for(args.endpoint)
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {args.token}".encode())])
    served_by = {}

    def fetch(ep):
        locations = [loc.uri.decode() if isinstance(loc.uri, bytes) else loc.uri for loc in ep.locations]
        last = None
        for loc in locations or [args.endpoint]:
            try:
                part = client_for(loc).do_get(ep.ticket, options=options).read_all()
                served_by[loc] = served_by.get(loc, 0) + 1
                return part
            except (flight.FlightUnavailableError, flight.FlightServerError) as e:
                last = e
        raise last

    out = {"tables": [], "ok": True}
    try:
        infos = list(client.list_flights(args.migration.encode(), options=options))
        for info in infos:
            migration, table_name = [p.decode() if isinstance(p, bytes) else p for p in info.descriptor.path]
            if args.table and table_name != args.table:
                continue
            meta = json.loads(info.app_metadata or b"{}")
            parts = [fetch(ep) for ep in info.endpoints]
            table = pa.concat_tables(parts) if parts else info.schema.empty_table()
            rows, digest, root = digests(table, meta.get("merkle_key") or [])
            ok = rows == meta.get("rows") and digest == meta.get("digest") and root == meta.get("merkle_root")
            out["ok"] &= ok
            if args.save:
                import pyarrow.parquet as pq

                os.makedirs(args.save, exist_ok=True)
                pq.write_table(table, os.path.join(args.save, f"{table_name}.parquet"))
            out["tables"].append(
                {
                    "migration": migration,
                    "table": table_name,
                    "endpoints": len(info.endpoints),
                    "rows": rows,
                    "digest": digest,
                    "merkle_root": root,
                    "certificate_sha256": meta.get("certificate_sha256"),
                    "matches_certificate": ok,
                }
            )
    except (flight.FlightUnauthenticatedError, flight.FlightUnauthorizedError) as e:
        print(json.dumps({"refused": str(e)}))
        return 2
    out["served_by"] = served_by
    print(json.dumps(out, indent=1))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
