#!/usr/bin/env python3
"""Import trl-lab/sensitive-data-detection `data/gittables_annotated.json` as PII eval columns.

Source: https://github.com/trl-lab/sensitive-data-detection
Commit: d217d88fa0697b986056e8da9e4a8cf427a5fddd (2025-10-25)
Licence: MIT (Copyright (c) 2025 TRL Lab) -- see trl_gittables.LICENSE
Content: 60 GitTables CSV tables, 1322 columns, 5 sample records per column, each column
annotated with `pii_gt` (a PII entity type or "None") and `sensitivity_gt` (0/1).

Usage: import_trl_gittables.py <git dir of the fetched snapshot> [out.jsonl]
Writes one JSON object per column:
  {"table", "column", "neighbours", "samples", "label", "source_label", "source_sensitive"}
"""
import json
import os
import subprocess
import sys

COMMIT = "d217d88fa0697b986056e8da9e4a8cf427a5fddd"
PATH = "data/gittables_annotated.json"
MAX_SAMPLES = 30

# Source pii_gt -> our kind. Kinds we do not have keep their own lower-case name.
LABEL_MAP = {
    "None": "none",
    "PERSON_NAME": "person_name",
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "STREET_ADDRESS": "street_address",
    "ZIPCODE": "postal_code",
    "DATE_OF_BIRTH": "date_of_birth",
    "IP_ADDRESS": "ip_address",
    "CREDIT_CARD_NUMBER": "credit_card",
    "IBAN_CODE": "iban",
    "ORGANIZATION_NAME": "none",  # an organisation, not a person
    "GENERIC_ID": "generic_id",
    "GEO_COORDINATES": "coordinates",
    "GENDER": "gender",
    "AGE": "age",
    "ETHNIC_GROUP": "ethnicity",
    "MARITAL_STATUS": "marital_status",
    "OCCUPATION": "occupation",
    "SPOKEN_LANGUAGE": "language",
    "URL": "url",
    "IMEI_HARDWARE_ID": "device_id",  # the one such column holds MAC addresses
    "PASSPORT": "passport",
    "SWIFT_CODE": "swift_bic",
}


def map_label(pii_gt, sensitive):
    label = LABEL_MAP.get(pii_gt, pii_gt.lower())
    # GENERIC_ID and URL are mostly row keys and page links; the annotators' own
    # sensitivity flag (sensitivity_gt) says which of them identify a person.
    if pii_gt in ("GENERIC_ID", "URL") and sensitive == 0:
        return "none"
    return label


def sample(v):
    if v is None:
        return None
    s = str(v)
    return None if s.strip() == "" else s


def main():
    git_dir = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "trl_gittables.jsonl")
    raw = subprocess.check_output(["git", "--git-dir", git_dir, "show", f"{COMMIT}:{PATH}"])
    data = json.loads(raw)
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        for table_file in data:
            cols = data[table_file]["columns"]
            table = table_file[:-4] if table_file.endswith(".csv") else table_file
            names = list(cols)
            for name in names:
                c = cols[name]
                rec = {
                    "table": table,
                    "column": name,
                    "neighbours": [x for x in names if x != name],
                    "samples": [sample(v) for v in c.get("records", [])][:MAX_SAMPLES],
                    "label": map_label(c["pii_gt"], c.get("sensitivity_gt")),
                    "source_label": c["pii_gt"],
                    "source_sensitive": c.get("sensitivity_gt"),
                }
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
    print(f"wrote {n} columns to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
