#!/usr/bin/env python3
"""Import acryldata/datahub-classify test datasets + expected info types as PII eval columns.

Source: https://github.com/acryldata/datahub-classify
Commit: 233a4dc58e4c22961993fc868ec2349a0e0595cf (2025-03-11)
Licence: Apache-2.0 -- see datahub_classify.LICENSE
Content: datahub-classify/tests/datasets/*.csv|xlsx (public/Kaggle-style sample tables) and
datahub-classify/tests/expected_output/expected_infotypes_IDEAL.json, which gives, per
dataset, the info type of the columns that hold one of datahub-classify's 14 info types.
Every other column of a present dataset is "no_infotype" (the test harness does the same).
Datasets named in the JSON but absent from tests/datasets are skipped.

Usage: import_datahub_classify.py <git dir of the fetched snapshot> [out.jsonl]
Writes one JSON object per column:
  {"table", "column", "neighbours", "samples", "label", "source_label"}
"""
import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile
import xml.etree.ElementTree as ET

COMMIT = "233a4dc58e4c22961993fc868ec2349a0e0595cf"
DATA_DIR = "datahub-classify/tests/datasets"
EXPECTED = "datahub-classify/tests/expected_output/expected_infotypes_IDEAL.json"
MAX_SAMPLES = 30
MAX_CHARS = 200  # long free-text cells (Emails.csv bodies) are cut to this length
# pandas index written into the CSVs by whoever prepared them; not a real column.
DROP_COLUMNS = {"Unnamed: 0"}

# Source info type -> our kind. Kinds we do not have keep their own lower-case name.
LABEL_MAP = {
    "no_infotype": "none",
    "Full_Name": "person_name",
    "Email_Address": "email",
    "Phone_Number": "phone",
    "Street_Address": "street_address",
    "Credit_Debit_Card_Number": "credit_card",
    "IBAN": "iban",
    "US_Social_Security_Number": "ssn",
    "IP_Address_v4": "ip_address",
    "IP_Address_v6": "ip_address",
    "Gender": "gender",
    "Age": "age",
    "Vehicle_Identification_Number": "vin",
    "Swift_Code": "swift_bic",
    "US_Driving_License_Number": "driving_licence",
}

csv.field_size_limit(1 << 30)


def git(git_dir, *args):
    return subprocess.check_output(["git", "--git-dir", git_dir, *args])


def read_csv(blob):
    text = blob.decode("utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def col_index(ref):
    letters = re.match(r"[A-Z]+", ref).group(0)
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def read_xlsx(blob):
    """First worksheet as (header, rows) of strings, like pandas.read_excel(sheet 0)."""
    z = zipfile.ZipFile(io.BytesIO(blob))
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", NS):
            shared.append("".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")))
    sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    table = []
    for row in sheet.iter(f"{{{NS['m']}}}row"):
        cells = {}
        for c in row.findall("m:c", NS):
            t = c.get("t")
            v = c.find("m:v", NS)
            if t == "s" and v is not None:
                val = shared[int(v.text)]
            elif t == "inlineStr":
                val = "".join(x.text or "" for x in c.iter(f"{{{NS['m']}}}t"))
            else:
                val = v.text if v is not None else ""
            cells[col_index(c.get("r"))] = val
        width = max(cells) + 1 if cells else 0
        table.append([cells.get(i, "") for i in range(width)])
    header = table[0]
    rows = [r + [""] * (len(header) - len(r)) for r in table[1:]]
    return header, rows


def samples_of(rows, i):
    out = []
    for r in rows:
        v = r[i] if i < len(r) else ""
        if v.strip() == "":
            continue
        out.append(v[:MAX_CHARS])
        if len(out) == MAX_SAMPLES:
            break
    return out


def main():
    git_dir = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "datahub_classify.jsonl")
    expected = json.loads(git(git_dir, "show", f"{COMMIT}:{EXPECTED}"))
    files = git(git_dir, "ls-tree", "--name-only", f"{COMMIT}:{DATA_DIR}").decode().split("\n")
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        for name in sorted(x for x in files if x):
            base, ext = os.path.splitext(name)
            if ext not in (".csv", ".xlsx") or base not in expected:
                print(f"skip {name}", file=sys.stderr)
                continue
            blob = git(git_dir, "show", f"{COMMIT}:{DATA_DIR}/{name}")
            header, rows = read_csv(blob) if ext == ".csv" else read_xlsx(blob)
            labels = expected[base]
            cols = [(i, h) for i, h in enumerate(header) if h not in DROP_COLUMNS]
            names = [h for _, h in cols]
            for i, h in cols:
                src = labels.get(h, "no_infotype")
                rec = {
                    "table": base,
                    "column": h,
                    "neighbours": [x for x in names if x != h],
                    "samples": samples_of(rows, i),
                    "label": LABEL_MAP.get(src, src.lower()),
                    "source_label": src,
                }
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
            missing = set(labels) - set(names)
            if missing:
                print(f"{base}: labelled columns not found: {sorted(missing)}", file=sys.stderr)
    print(f"wrote {n} columns to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
