"""Runs every Valentine matcher on the corpus pairs that Valentine can take
(one source CSV and one target CSV, rows on both sides) and prints, per split
and matcher, the means of precision, recall, F1 (of the one-to-one matches a
matcher proposes, as valentine's metrics do) and recall at ground-truth size:
over the matcher's raw ranking, and over its one-to-one choices first (greedy
from its ranking), the ranking Sensei's figure uses."""
import csv
import glob
import gzip
import os
import re
import shutil
import sys
import time

import pandas as pd
from valentine import valentine_match
from valentine.algorithms import Coma, Cupid, DistributionBased, JaccardDistanceMatcher, SimilarityFlooding


# English function words Cupid drops from names (NLTK's own list is a data
# download this machine cannot make; these are the ones column names use).
STOP = "a an the of and or in on at to for by with from as is are was be per".split()


def cupid_offline():
    """Cupid reads WordNet, stop words and the punkt tokenizer through NLTK,
    which would download them. Here: WordNet 3.0 from Debian's wordnet-base
    and wordnet-sense-index (its lexnames list written from the
    package's lexnames(5) page), the
    stop words above, and a regular-expression tokenizer (names hold no
    sentences). Returns why Cupid cannot run, or None."""
    import nltk
    from valentine.algorithms.cupid import linguistic_matching as lm

    src = "/usr/share/wordnet"
    if not os.path.exists(os.path.join(src, "index.sense")):
        return "WordNet files missing: apt-get install wordnet-base wordnet-sense-index"
    data = os.path.expanduser("~/.cache/sensei/nltk_data")
    wn_dir = os.path.join(data, "corpora", "wordnet")
    if not os.path.exists(os.path.join(wn_dir, "lexnames")):
        os.makedirs(wn_dir, exist_ok=True)
        for f in os.listdir(src):
            if f.startswith(("data.", "index.")) or f.endswith(".exc") or f == "index.sense":
                shutil.copy(os.path.join(src, f), wn_dir)
        page = gzip.open("/usr/share/man/man5/lexnames.5WN.gz", "rt").read()
        rows = [l for l in page.splitlines() if re.match(r"^\d\d\t[a-z]+\.[A-Za-z]+\s*\t", l)]
        with open(os.path.join(wn_dir, "lexnames"), "w") as out:
            for l in rows:
                num, name, _ = l.split("\t", 2)
                out.write(f"{num}\t{name.strip()}\t{1 if name.startswith('noun') else 2 if name.startswith('verb') else 3 if name.startswith('adj') else 4}\n")
    nltk.data.path.insert(0, data)
    nltk.word_tokenize = lambda text, *a, **k: re.findall(r"\w+|[^\w\s]", text)
    lm._english_stopwords = lambda: frozenset(STOP)
    lm._ensure_nltk_data = lambda: None
    return None


def matchers():
    return [
        ("Cupid", lambda: Cupid()),
        ("DistributionBased", lambda: DistributionBased()),
        ("JaccardDistance", lambda: JaccardDistanceMatcher()),
        ("SimilarityFlooding", lambda: SimilarityFlooding()),
        ("Coma (schema)", lambda: Coma(use_instances=False)),
        ("Coma (instances)", lambda: Coma(use_instances=True)),
    ]


def metrics(matches, truth):
    # matches: {ColumnPair(source_table, source_column, target_table, target_column): score}
    # (valentine 1.x); sorted best first here, ties by name for a stable order.
    ranked = sorted(matches.items(), key=lambda kv: (-kv[1], kv[0].source_column, kv[0].target_column))
    pairs = [(p.source_column.lower(), p.target_column.lower()) for p, _ in ranked]
    used_s, used_t, one = set(), set(), []
    for s, t in pairs:
        if s not in used_s and t not in used_t:
            one.append((s, t))
            used_s.add(s)
            used_t.add(t)
    hits = len(set(one) & truth)
    p = hits / len(one) if one else 0.0
    r = hits / len(truth) if truth else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    rgt = len(set(pairs[: len(truth)]) & truth) / len(truth) if truth else 0.0
    rest = [x for x in pairs if x not in set(one)]
    rgt11 = len(set((one + rest)[: len(truth)]) & truth) / len(truth) if truth else 0.0
    return p, r, f1, rgt, rgt11


def pairs(root):
    with open(os.path.join(root, "splits.csv")) as f:
        for row in csv.DictReader(f):
            d = os.path.join(root, row["pair"])
            src = glob.glob(os.path.join(d, "source", "*.csv"))
            tgt = glob.glob(os.path.join(d, "target", "*.csv")) or glob.glob(
                os.path.join(os.path.dirname(d), "target", "*.csv")
            )
            if len(src) == 1 and len(tgt) == 1:
                yield row["pair"], row["split"], src[0], tgt[0], d


def main():
    root = sys.argv[1]
    only = sys.argv[2:]  # matcher names to run (all when empty)
    todo = list(pairs(root))
    frames = {}
    cupid_problem = cupid_offline()

    def frame(path):
        if path not in frames:
            frames[path] = pd.read_csv(path, dtype=str, keep_default_na=False)
        return frames[path]

    # SENSEI_SPLITS=blind runs one part (two processes can share the work).
    for split in os.environ.get("SENSEI_SPLITS", "fit,blind").split(","):
        part = [p for p in todo if p[1] == split]
        print(f"\n{split} part: {len(part)} pairs with one source and one target CSV")
        print(f"{'matcher':<20} {'precision':>9} {'recall':>6} {'f1':>6} {'recall@gt':>9} {'r@gt 1:1':>9} {'seconds':>8}")
        for name, make in matchers():
            if only and name not in only:
                continue
            if name == "Cupid" and cupid_problem:
                print(f"{name:<20} not run: {cupid_problem}")
                continue
            sums = [0.0] * 5
            start = time.monotonic()
            failed = None
            for pair, _, src, tgt, d in part:
                with open(os.path.join(d, "truth.csv")) as f:
                    truth = {(r["source_column"].lower(), r["target_column"].lower()) for r in csv.DictReader(f)}
                try:
                    matches = valentine_match([frame(src), frame(tgt)], make(), df_names=["source", "target"])
                except Exception as e:  # a matcher that cannot run here is reported, not hidden
                    failed = f"{type(e).__name__}: {e}"
                    break
                for i, v in enumerate(metrics(dict(matches), truth)):
                    sums[i] += v
            n = max(len(part), 1)
            if failed:
                print(f"{name:<20} failed: {failed[:100]}")
                continue
            print(f"{name:<20} {sums[0]/n:>9.3f} {sums[1]/n:>6.3f} {sums[2]/n:>6.3f} {sums[3]/n:>9.3f} {sums[4]/n:>9.3f} {time.monotonic()-start:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
