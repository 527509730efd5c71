"""Does the hybrid hold up on every dataset? Reads `paperbot eval --json` results.

For each results file, prints the hybrid's recall at each depth, the best single signal
and the plain equal-weight ALS + TF-IDF blend ("baseline") from the same run, the ratios
hybrid / best single and hybrid / baseline, and whether the hybrid is within `--slack`
of both at R@20 and R@300 (the bar the blend procedure must meet on every dataset).

    paperbot eval DIR --models hybrid,content,tfidf,imc,knn,als,popularity,baseline \\
        --json bench/results/NAME.json
    python bench/blend_check.py bench/results/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SINGLES = ("content", "tfidf", "imc", "knn", "als", "popularity")
CHECKED = ("recall@20", "recall@300")


def check(path: Path, slack: float) -> bool:
    """Print one dataset's comparison; True when the hybrid meets the bar."""
    data = json.loads(path.read_text())
    models = data["models"]
    if "hybrid" not in models:
        print(f"{path.name}: no hybrid result, skipped")
        return True
    hybrid = models["hybrid"]
    keys = [k for k in hybrid if k.startswith(("recall@", "ndcg@"))]
    ok = True
    print(f"\n{data.get('dataset', path.stem)} ({path.name})")
    head = ("metric", "hybrid", "best single", "baseline", "h/best", "h/base")
    print("  {:<11} {:>7} {:>18} {:>9} {:>7} {:>7}".format(*head))
    for key in keys:
        singles = {m: models[m][key] for m in SINGLES if m in models}
        best_name = max(singles, key=singles.get) if singles else "-"
        best = singles.get(best_name, 0.0)
        base = models.get("baseline", {}).get(key)
        h = hybrid[key]
        flag = ""
        if key in CHECKED:
            bad = h < best - slack or (base is not None and h < base - slack)
            ok &= not bad
            flag = "  FAIL" if bad else "  ok"
        ratio_best = f"{h / best:.3f}" if best else "-"
        ratio_base = f"{h / base:.3f}" if base else "-"
        base_txt = f"{base:.4f}" if base is not None else "-"
        print(
            f"  {key:<11} {h:>7.4f} {best_name:>9} {best:>8.4f} {base_txt:>9} "
            f"{ratio_best:>7} {ratio_base:>7}{flag}"
        )
    weights = hybrid.get("procedure", {}).get("blend", {})
    for kind in ("catalog", "cold"):
        if isinstance(weights.get(kind), dict) and "weights" in weights[kind]:
            print(f"  {kind} weights: {weights[kind]['weights']}")
    return ok


def main() -> int:
    """Check every results file given; exit 1 if any misses the bar."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="paperbot eval --json files")
    parser.add_argument("--slack", type=float, default=0.005, help="allowed shortfall")
    args = parser.parse_args()
    ok = all([check(path, args.slack) for path in args.results])
    print("\nall datasets meet the bar" if ok else "\nsome dataset misses the bar")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
