#!/usr/bin/env python3
"""Marks every column of the public sets with its part, fit or blind.

The part is a function of the table's name alone (the first byte of its
SHA-1, even: fit, odd: blind), so all columns of one table fall on the same
side and the split never depends on the detector. Fixed before any figure
was measured; the blind part is never used to tune the detector
(`sensei pii-eval --mistakes` lists the fit part's mistakes only).

    python3 split.py *.jsonl     # rewrites each file in place
"""
import hashlib
import json
import sys


def part(table: str) -> str:
    return "fit" if hashlib.sha1(table.encode()).digest()[0] % 2 == 0 else "blind"


for path in sys.argv[1:]:
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    with open(path, "w", encoding="utf-8") as out:
        for r in rows:
            r["part"] = part(r["table"])
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
