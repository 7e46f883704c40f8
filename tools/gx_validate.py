#!/usr/bin/env python3
"""Reference validator: run an expectation suite with the real Great Expectations (1.x).

Usage: python gx_validate.py DATA.parquet SUITE.json

Loads DATA.parquet with pandas (pyarrow engine), validates it in an ephemeral GX
context against SUITE.json and prints ONE JSON array to stdout, in suite order:

    [{"type": "expect_...", "kwargs": {...}, "success": true}, ...]

An entry that GX could not build or evaluate gets "success": false and an
"exception" message. SUITE.json is the GX 1.x shape
{"name": ..., "expectations": [{"type": ..., "kwargs": {...}, "meta": {}}]};
the legacy keys "expectation_suite_name" / "expectation_type" are accepted too.
All GX logging and progress output goes to stderr; stdout carries only the JSON.
"""
import contextlib
import json
import logging
import os
import sys

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
IDX = "_gx_validate_idx"


def load_suite(path):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    name = raw.get("name") or raw.get("expectation_suite_name") or "suite"
    entries = [{"type": e.get("type") or e.get("expectation_type"),
                "kwargs": dict(e.get("kwargs") or {}), "meta": dict(e.get("meta") or {})}
               for e in raw.get("expectations", [])]
    return name, entries


def exception_message(res):
    info = res.exception_info or {}
    if "raised_exception" not in info:  # keyed by metric id in some code paths
        info = next((v for v in info.values() if isinstance(v, dict)), {})
    if info.get("raised_exception"):
        return info.get("exception_message") or "exception raised in GX"
    return None


def run(data_path, suite_path):
    import pandas as pd
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_exp")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # some GX modules force INFO

    df = pd.read_parquet(data_path, engine="pyarrow")
    name, entries = load_suite(suite_path)
    out = [{"type": e["type"], "kwargs": e["kwargs"], "success": False} for e in entries]

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}  # (tqdm writes to stderr anyway)
    batch_def = (ctx.data_sources.add_pandas("sensei_src")
                 .add_dataframe_asset("sensei_df")
                 .add_batch_definition_whole_dataframe("whole"))
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})

    # A suite is set-like: an entry equal to an earlier one (meta aside, defaults filled
    # in) is not added again and takes that earlier entry's result.
    suite, keys, same_as = gx.ExpectationSuite(name=name), [], {}
    for i, e in enumerate(entries):
        try:
            cfg = ExpectationConfiguration(
                type=e["type"], kwargs=e["kwargs"], meta={**e["meta"], IDX: i})
            exp = cfg.to_domain_obj()
            key = (exp.expectation_type, exp.dict(exclude={"id", "meta", "notes",
                                                           "rendered_content"}))
            if key in [k for k, _ in keys]:
                same_as[i] = next(j for k, j in keys if k == key)
                continue
            keys.append((key, i))
            suite.add_expectation(exp)
        except Exception as exc:  # unknown type, bad kwargs, ...
            out[i]["exception"] = f"{type(exc).__name__}: {exc}"

    try:
        results = batch.validate(suite).results if suite.expectations else []
    except Exception:  # one bad entry must not sink the rest: validate one by one
        results = []
        for exp in suite.expectations:
            try:
                results.append(batch.validate(exp))
            except Exception as exc:
                i = exp.meta[IDX]
                out[i]["exception"] = f"{type(exc).__name__}: {exc}"
    for res in results:
        i = (res.expectation_config.meta or {}).get(IDX)
        if i is None:
            continue
        msg = exception_message(res)
        out[i]["success"] = bool(res.success) and not msg
        if msg:
            out[i]["exception"] = msg
    for i, j in same_as.items():
        out[i] = {**out[j], "type": entries[i]["type"], "kwargs": entries[i]["kwargs"]}
    return out


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):  # nothing from GX may reach stdout
        out = run(argv[1], argv[2])
    json.dump(out, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
