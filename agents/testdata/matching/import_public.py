"""Copies the public schema-matching pairs into this folder's layout.

    python3 import_public.py MIRRORS

MIRRORS holds bare git clones named `<owner>+<name>/repo` of the
repositories below (at the commits listed in README.md). Every pair becomes
a folder `<group>/<pair>/` with

- `source/<table>.csv` (header and rows) or `source.sql` (DDL only; a
  pair with neither uses its group's `<group>/source.sql`),
- `target/<table>.csv` or `target.sql` (a pair without a target of its own
  uses its group's `<group>/target/`),
- `truth.csv`: `source_table,source_column,target_table,target_column`, one
  line per correct correspondence (a target column may have several).

Large CSV files are cut to their first ROWS rows; nothing else is changed.
The ground truth of the Synthea pairs is transcribed here from the ETL's
own SQL (a target column is labelled with the source column its value is
copied or computed from; constants and vocabulary lookups have no label).
"""
import csv
import io
import os
import re
import subprocess
import sys

ROWS = 1500
HERE = os.path.dirname(os.path.abspath(__file__))


def git_show(mirrors, repo, path):
    git_dir = os.path.join(mirrors, repo.replace("/", "+"), "repo")
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"HEAD:{path}"],
        check=True,
        capture_output=True,
    ).stdout


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def cut_csv(data, rows=ROWS):
    text = data.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for i, row in enumerate(reader):
        if i > rows:
            break
        w.writerow(row)
    return out.getvalue().encode()


def header(data):
    return next(csv.reader(io.StringIO(data.decode("utf-8", errors="replace"))))


def write_truth(path, rows):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["source_table", "source_column", "target_table", "target_column"])
    for r in sorted(set(rows)):
        w.writerow(r)
    write(path, out.getvalue().encode())


def matrix_truth(gt, s_table, s_cols, t_table, t_cols):
    rows = []
    lines = [l for l in gt.decode().splitlines() if l.strip()]
    for i, line in enumerate(lines):
        for j, v in enumerate(line.split(",")):
            if v.strip() == "1":
                rows.append((s_table, s_cols[i], t_table, t_cols[j]))
    return rows


def di_integration(mirrors):
    repo = "UMR-Big-Data-Analytics/di-integration"
    base = "data/schema_matching"
    for kind in ["joinable", "semjoinable", "unionable", "viewunion"]:
        d = f"{base}/Musicians_{kind}"
        s = git_show(mirrors, repo, f"{d}/source/musicians_{kind}_source.csv")
        t = git_show(mirrors, repo, f"{d}/target/musicians_{kind}_target.csv")
        gt = git_show(
            mirrors,
            repo,
            f"{d}/ground_truth/musicians_{kind}_source___musicians_{kind}_target.csv",
        )
        out = os.path.join(HERE, "wikidata-musicians", f"musicians_{kind}")
        write(f"{out}/source/musicians_source.csv", cut_csv(s))
        write(f"{out}/target/musicians_target.csv", cut_csv(t))
        write_truth(
            f"{out}/truth.csv",
            matrix_truth(gt, "musicians_source", header(s), "musicians_target", header(t)),
        )
    d = f"{base}/fdb1_mb2"
    out = os.path.join(HERE, "freedb-musicbrainz", "fdb1_mb2")
    truth = []
    headers = {}
    for side, tables in [
        ("source", ["discs", "tracks"]),
        ("target", ["artist", "recording", "release", "release_country", "tag", "track"]),
    ]:
        for t in tables:
            data = git_show(mirrors, repo, f"{d}/{side}/{t}.csv")
            headers[t] = header(data)
            write(f"{out}/{side}/{t}.csv", cut_csv(data))
    for s, t in [
        ("discs", "artist"),
        ("discs", "release"),
        ("discs", "release_country"),
        ("discs", "tag"),
        ("tracks", "recording"),
        ("tracks", "track"),
    ]:
        gt = git_show(mirrors, repo, f"{d}/ground_truth/{s}___{t}.csv")
        truth += matrix_truth(gt, s, headers[s], t, headers[t])
    write_truth(f"{out}/truth.csv", truth)


def gdc(mirrors):
    import tarfile

    data = git_show(
        mirrors,
        "VIDA-NYU/data-harmonization-benchmark",
        "data_harmonization_benchmark/datasets/GDC_new.tar.gz",
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = sorted(
            n for n in tar.getnames() if n.count("/") == 2 and "ipynb" not in n
        )
        wrote_target = False
        for n in names:
            _, pair, f = n.split("/")
            body = tar.extractfile(n).read()
            out = os.path.join(HERE, "gdc")
            if f == "source.csv":
                write(f"{out}/{pair}/source/{pair}.csv", body)
            elif f == "target.csv" and not wrote_target:
                # Every pair has the same target (the GDC dictionary's columns).
                write(f"{out}/target/gdc.csv", body)
                wrote_target = True
            elif f == "groundtruth.csv":
                rows = list(csv.reader(io.StringIO(body.decode())))[1:]
                write_truth(
                    f"{out}/{pair}/truth.csv",
                    [(pair, r[0], "gdc", r[1]) for r in rows if len(r) == 2],
                )


def ddl_tables(sql, placeholder):
    """CREATE TABLE statements of a DDL file by table (schema and placeholder removed)."""
    sql = sql.decode()
    out = {}
    for m in re.finditer(r"create\s+table\s+([^\s(]+)\s*\((.*?)\);", sql, re.I | re.S):
        name = m.group(1).replace(placeholder, "").split(".")[-1].strip('"').lower()
        out[name] = f"CREATE TABLE {name} ({m.group(2)});\n"
    return out


def mimic_omop(mirrors):
    gt = git_show(
        mirrors,
        "UHasselt-DSI-Data-Systems-Lab/code-schema-matching-LLMs-artefacs",
        "benchmark/ground_truth.csv",
    ).decode()
    mimic = ddl_tables(
        git_show(mirrors, "MIT-LCP/mimic-code", "mimic-iv/buildmimic/postgres/create.sql"),
        "",
    )
    omop = ddl_tables(
        git_show(
            mirrors,
            "OHDSI/CommonDataModel",
            "inst/ddl/5.3/postgresql/OMOPCDM_postgresql_5.3_ddl.sql",
        ),
        "@cdmDatabaseSchema.",
    )
    rows = []
    for r in list(csv.DictReader(io.StringIO(gt))):
        _, st, sc = r["source"].split(".")
        _, tt, tc = r["target"].split(".")
        rows.append((st.lower(), sc, tt.lower(), tc))
    sources = sorted({r[0] for r in rows})
    # One source for every pair of the group: <group>/source.sql.
    write(os.path.join(HERE, "mimic-omop", "source.sql"), "".join(mimic[s] for s in sources).encode())
    for target in sorted({r[2] for r in rows}):
        out = os.path.join(HERE, "mimic-omop", target)
        write(f"{out}/target.sql", omop[target].encode())
        write_truth(f"{out}/truth.csv", [r for r in rows if r[2] == target])


# Target column <- source table.column, read off ETL-Synthea's
# inst/sql/sql_server/cdm_version/v540/insert_<table>.sql (Synthea 3.3.0).
SYNTHEA_TRUTH = {
    "person": [
        ("patients", "gender", "gender_concept_id"),
        ("patients", "birthdate", "year_of_birth"),
        ("patients", "birthdate", "month_of_birth"),
        ("patients", "birthdate", "day_of_birth"),
        ("patients", "birthdate", "birth_datetime"),
        ("patients", "race", "race_concept_id"),
        ("patients", "ethnicity", "ethnicity_concept_id"),
        ("patients", "id", "person_source_value"),
        ("patients", "gender", "gender_source_value"),
        ("patients", "race", "race_source_value"),
        ("patients", "ethnicity", "ethnicity_source_value"),
    ],
    "provider": [
        ("providers", "name", "provider_name"),
        ("providers", "gender", "gender_concept_id"),
        ("providers", "id", "provider_source_value"),
        ("providers", "speciality", "specialty_source_value"),
        ("providers", "gender", "gender_source_value"),
        ("providers", "gender", "gender_source_concept_id"),
    ],
    "care_site": [
        ("organizations", "name", "care_site_name"),
        ("organizations", "id", "care_site_source_value"),
    ],
    "location": [
        ("patients", "city", "city"),
        ("patients", "state", "state"),
        ("patients", "zip", "zip"),
        ("patients", "zip", "location_source_value"),
    ],
    "condition_occurrence": [
        ("conditions", "patient", "person_id"),
        ("conditions", "code", "condition_concept_id"),
        ("conditions", "start", "condition_start_date"),
        ("conditions", "start", "condition_start_datetime"),
        ("conditions", "stop", "condition_end_date"),
        ("conditions", "stop", "condition_end_datetime"),
        ("conditions", "encounter", "visit_occurrence_id"),
        ("conditions", "code", "condition_source_value"),
        ("conditions", "code", "condition_source_concept_id"),
    ],
    "device_exposure": [
        ("devices", "patient", "person_id"),
        ("devices", "code", "device_concept_id"),
        ("devices", "start", "device_exposure_start_date"),
        ("devices", "start", "device_exposure_start_datetime"),
        ("devices", "stop", "device_exposure_end_date"),
        ("devices", "stop", "device_exposure_end_datetime"),
        ("devices", "udi", "unique_device_id"),
        ("devices", "encounter", "visit_occurrence_id"),
        ("devices", "code", "device_source_value"),
        ("devices", "code", "device_source_concept_id"),
    ],
    "procedure_occurrence": [
        ("procedures", "patient", "person_id"),
        ("procedures", "code", "procedure_concept_id"),
        ("procedures", "start", "procedure_date"),
        ("procedures", "start", "procedure_datetime"),
        ("procedures", "stop", "procedure_end_date"),
        ("procedures", "stop", "procedure_end_datetime"),
        ("procedures", "encounter", "visit_occurrence_id"),
        ("procedures", "code", "procedure_source_value"),
        ("procedures", "code", "procedure_source_concept_id"),
    ],
    "death": [
        ("encounters", "patient", "person_id"),
        ("encounters", "start", "death_date"),
        ("encounters", "start", "death_datetime"),
        ("encounters", "reasoncode", "cause_concept_id"),
        ("encounters", "reasoncode", "cause_source_value"),
        ("encounters", "reasoncode", "cause_source_concept_id"),
    ],
}


def synthea_omop(mirrors):
    synthea = ddl_tables(
        git_show(
            mirrors,
            "OHDSI/ETL-Synthea",
            "inst/sql/sql_server/synthea_version/v330/create_synthea_tables.sql",
        ),
        "@synthea_schema.",
    )
    omop = ddl_tables(
        git_show(
            mirrors,
            "OHDSI/CommonDataModel",
            "inst/ddl/5.4/postgresql/OMOPCDM_postgresql_5.4_ddl.sql",
        ),
        "@cdmDatabaseSchema.",
    )
    # The source of every pair: the Synthea tables the ETL reads.
    sources = sorted(
        {"patients", "providers", "organizations", "conditions", "devices"}
        | {"procedures", "encounters", "medications", "observations", "payers"}
    )
    write(os.path.join(HERE, "synthea-omop", "source.sql"), "".join(synthea[s] for s in sources).encode())
    for target, rows in SYNTHEA_TRUTH.items():
        out = os.path.join(HERE, "synthea-omop", target)
        write(f"{out}/target.sql", omop[target].encode())
        write_truth(f"{out}/truth.csv", [(s, c, target, t) for s, c, t in rows])


LICENCES = {
    "wikidata-musicians": [("UMR-Big-Data-Analytics/di-integration", "LICENSE")],
    "freedb-musicbrainz": [("UMR-Big-Data-Analytics/di-integration", "LICENSE")],
    "gdc": [("VIDA-NYU/data-harmonization-benchmark", "LICENSE")],
    "mimic-omop": [
        ("UHasselt-DSI-Data-Systems-Lab/code-schema-matching-LLMs-artefacs", "LICENSE"),
        ("MIT-LCP/mimic-code", "LICENSE"),
    ],
}


def licences(mirrors):
    """Each group keeps the licence texts of what it copied."""
    for group, files in LICENCES.items():
        text = b""
        for repo, path in files:
            text += f"== {repo} ({path})\n\n".encode() + git_show(mirrors, repo, path) + b"\n"
        write(os.path.join(HERE, group, "LICENSE"), text)
    apache = (
        "== OHDSI/CommonDataModel and OHDSI/ETL-Synthea\n\n"
        "Licensed under the Apache License, Version 2.0 (the DESCRIPTION file of\n"
        "each repository); a copy of the licence is in ../gdc/LICENSE. The DDL\n"
        "was copied with its schema placeholder removed.\n"
    ).encode()
    with open(os.path.join(HERE, "mimic-omop", "LICENSE"), "ab") as f:
        f.write(apache)
    write(os.path.join(HERE, "synthea-omop", "LICENSE"), apache)


if __name__ == "__main__":
    mirrors = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror"
    di_integration(mirrors)
    gdc(mirrors)
    mimic_omop(mirrors)
    synthea_omop(mirrors)
    licences(mirrors)
