#!/usr/bin/env python3
"""Import tsegall/semantic-types (FTA Semantic Type Reference Set) as PII eval columns.

Source: https://github.com/tsegall/semantic-types
Commit: 782d9128651217ba526c4a58bb4fe2d09f9b2b3c (2022-08-28, "Pass 3") -- the newest commit
  whose reference.csv the stored snapshot holds (later reference.csv blobs are > 4 MiB and
  absent from the snapshot; the newest commit is 46b7c09e2dbe612d2ae3b5687970f336e109ac1d).
Licence (stated in README.md / License.md at 46b7c09): everything except the data files is
  Apache-2.0; the data files (data/**/*.csv, open-data extracts from Socrata portals) "are
  covered by the respective licenses from socrata.com - which for the current set is the
  'Creative Commons 1.0 Universal (Public Domain Dedication)' license". See
  fta_semantic_types.LICENSE.
Content: reference.csv lists, for each column (File, FieldOffset) of ~1,400 real open-data
  CSV extracts (<= 1000 records each), the hand-checked FTA semantic type ("" = none).

The full set has ~24,400 columns; this script writes a deterministic sample: every
semantic type that maps to a personal kind is capped (CAP_OURS for our ten kinds, CAP_OTHER
for other personal kinds), the rest is filled with unlabelled ("none") columns up to TOTAL.
Columns typed BLANK (no values at all) are left out. Order is by sha1 of file+offset.

Usage: import_fta_semantic_types.py <git dir of the fetched snapshot> [out.jsonl]
Writes one JSON object per column:
  {"table", "column", "neighbours", "samples", "label", "source_label"}
"""
import collections
import csv
import hashlib
import io
import json
import os
import subprocess
import sys

COMMIT = "782d9128651217ba526c4a58bb4fe2d09f9b2b3c"
REFERENCE = "reference.csv"
MAX_SAMPLES = 30
MAX_CHARS = 200
CAP_OURS = 60
CAP_OTHER = 25
TOTAL = 1500

# FTA semantic type -> our kind. Personal kinds we do not have keep a lower-case name.
# Any type not listed here (dates formats such as "yyyy", booleans such as YES_NO,
# STATE_PROVINCE.*, COUNTRY.*, URI.URL, COMPANY_NAME, FREE_TEXT, GUID, HASH.*, ...) is "none".
LABEL_MAP = {
    "": "none",
    "NAME.FIRST": "person_name",
    "NAME.LAST": "person_name",
    "NAME.MIDDLE": "person_name",
    "NAME.FIRST_LAST": "person_name",
    "NAME.LAST_FIRST": "person_name",
    "NAME.MIDDLE_INITIAL": "name_initial",
    "NAME.SUFFIX": "name_suffix",
    "EMAIL": "email",
    "TELEPHONE": "phone",
    "STREET_ADDRESS_EN": "street_address",
    "STREET_ADDRESS2_EN": "street_address",  # second address line ("Suite 216", "Apt 4")
    "POSTAL_CODE.ZIP5_US": "postal_code",
    "POSTAL_CODE.ZIP5_PLUS4_US": "postal_code",
    "POSTAL_CODE.POSTAL_CODE_CA": "postal_code",
    "POSTAL_CODE.POSTAL_CODE_AU": "postal_code",
    "POSTAL_CODE.POSTAL_CODE_CO": "postal_code",
    "CITY": "city",
    "GENDER.TEXT_EN": "gender",
    "GENDER.TEXT_ES": "gender",
    "PERSON.AGE": "age",
    "PERSON.RACE_EN": "ethnicity",
    "COORDINATE.LATITUDE_DECIMAL": "coordinates",
    "COORDINATE.LONGITUDE_DECIMAL": "coordinates",
    "COORDINATE_PAIR.DECIMAL_PAREN": "coordinates",
    "COORDINATE.NORTHING": "coordinates",
    "COORDINATE.EASTING": "coordinates",
    "VIN": "vin",
    "CHECKDIGIT.LUHN": "tax_id",  # Texas taxpayer numbers (mostly businesses)
}
SKIP = {"BLANK"}
OUR_KINDS = {
    "email", "phone", "person_name", "street_address", "postal_code",
    "date_of_birth", "ssn", "credit_card", "iban", "ip_address",
}

csv.field_size_limit(1 << 30)


def show(git_dir, path):
    p = subprocess.run(["git", "--git-dir", git_dir, "show", f"{COMMIT}:{path}"],
                       capture_output=True)
    return p.stdout if p.returncode == 0 else None


def key(r):
    return hashlib.sha1(f"{r['File']}#{r['FieldOffset']}".encode()).hexdigest()


def main():
    git_dir = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fta_semantic_types.jsonl")
    ref = list(csv.DictReader(io.StringIO(show(git_dir, REFERENCE).decode("utf-8"))))
    by_type = collections.defaultdict(list)
    for r in ref:
        st = r["SemanticType"]
        if st in SKIP:
            continue
        by_type[st].append(r)
    chosen, rest = [], []
    for st, rs in by_type.items():
        rs.sort(key=key)
        label = LABEL_MAP.get(st, "none")
        if label == "none":
            rest.extend(rs)
        else:
            cap = CAP_OURS if label in OUR_KINDS else CAP_OTHER
            chosen.extend(rs[:cap])
    rest.sort(key=key)
    chosen.extend(rest[:max(0, TOTAL - len(chosen))])
    chosen.sort(key=lambda r: (r["File"], int(r["FieldOffset"])))

    files = {}
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        for r in chosen:
            path = r["File"]
            if path not in files:
                blob = show(git_dir, path)
                files[path] = None if blob is None else list(
                    csv.reader(io.StringIO(blob.decode("utf-8", errors="replace"))))
            rows = files[path]
            if not rows:
                print(f"skip {path}: not in snapshot", file=sys.stderr)
                continue
            header = rows[0]
            i = int(r["FieldOffset"])
            samples = []
            for row in rows[1:]:
                v = row[i] if i < len(row) else ""
                if v.strip():
                    samples.append(v[:MAX_CHARS])
                    if len(samples) == MAX_SAMPLES:
                        break
            name = header[i] if i < len(header) else r["FieldName"]
            table = path.split("/", 2)[-1]
            if table.endswith(".csv"):
                table = table[:-4]
            st = r["SemanticType"]
            rec = {
                "table": table,
                "column": name,
                "neighbours": [h for j, h in enumerate(header) if j != i],
                "samples": samples,
                "label": LABEL_MAP.get(st, "none"),
                "source_label": st,
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    print(f"wrote {n} of {len(ref)} reference columns to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
