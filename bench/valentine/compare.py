"""Runs every Valentine matcher on the Valentine-layout pairs of a folder and
prints, per matcher, the averages of precision, recall, F1 (of the one-to-one
matches a matcher proposes, as valentine's metrics do) and recall at
ground-truth size: over the matcher's raw ranking, and over its one-to-one
choices first (greedy from its ranking), the ranking Sensei's figure uses."""
import glob
import json
import os
import sys
import time

import pandas as pd
from valentine import valentine_match
from valentine.algorithms import Coma, Cupid, DistributionBased, JaccardDistanceMatcher, SimilarityFlooding


def matchers():
    out = [
        ("Cupid", lambda: Cupid()),
        ("DistributionBased", lambda: DistributionBased()),
        ("JaccardDistance", lambda: JaccardDistanceMatcher()),
        ("SimilarityFlooding", lambda: SimilarityFlooding()),
        ("Coma (schema)", lambda: Coma(use_instances=False)),
        ("Coma (instances)", lambda: Coma(use_instances=True)),
    ]
    return out


def metrics(matches, truth):
    # matches: {ColumnPair(source_table, source_column, target_table, target_column): score}
    # (valentine 1.x); sorted best first here, ties by name for a stable order.
    ranked = sorted(matches.items(), key=lambda kv: (-kv[1], kv[0].source_column, kv[0].target_column))
    pairs = [(p.source_column, p.target_column) for p, _ in ranked]
    # One-to-one: greedily keep the best match per column on either side.
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
    top = set(pairs[: len(truth)])
    rgt = len(top & truth) / len(truth) if truth else 0.0
    # The same ranking Sensei's figure uses: one-to-one choices first.
    rest = [x for x in pairs if x not in set(one)]
    top11 = set((one + rest)[: len(truth)])
    rgt11 = len(top11 & truth) / len(truth) if truth else 0.0
    return p, r, f1, rgt, rgt11


def main():
    folder = sys.argv[1]
    pairs = sorted(os.path.basename(p)[: -len("_mapping.json")] for p in glob.glob(os.path.join(folder, "*_mapping.json")))
    print(f"{'matcher':<20} {'precision':>9} {'recall':>6} {'f1':>6} {'recall@gt':>9} {'r@gt 1:1':>9} {'seconds':>8}")
    for name, make in matchers():
        sums = [0.0, 0.0, 0.0, 0.0, 0.0]
        start = time.monotonic()
        failed = None
        for pair in pairs:
            src = pd.read_csv(os.path.join(folder, f"{pair}_source.csv"), dtype=str, keep_default_na=False)
            tgt = pd.read_csv(os.path.join(folder, f"{pair}_target.csv"), dtype=str, keep_default_na=False)
            with open(os.path.join(folder, f"{pair}_mapping.json")) as f:
                truth = {(m["source_column"], m["target_column"]) for m in json.load(f)["matches"]}
            try:
                matches = valentine_match([src, tgt], make(), df_names=["source", "target"])
            except Exception as e:  # a matcher that cannot run here is reported, not hidden
                failed = f"{type(e).__name__}: {e}"
                break
            for i, v in enumerate(metrics(dict(matches), truth)):
                sums[i] += v
        n = len(pairs)
        if failed:
            print(f"{name:<20} failed: {failed[:100]}")
            continue
        print(f"{name:<20} {sums[0]/n:>9.3f} {sums[1]/n:>6.3f} {sums[2]/n:>6.3f} {sums[3]/n:>9.3f} {sums[4]/n:>9.3f} {time.monotonic()-start:>8.1f}")


if __name__ == "__main__":
    main()
