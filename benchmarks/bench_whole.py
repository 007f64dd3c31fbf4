"""The whole conflict run at province scale: every rule, then the one map, at 1/10 scale and at full scale.

    .venv/bin/python benchmarks/bench_whole.py --scales 0.1,1

For each scale, generates (once) the province's twelve plans and DEM (benchmarks/province.py), loads them
into a GeoPackage store (once, not timed), then times in a child process:

- `run_detection`: every rule of conflict_rules/ on the current versions (reading the plans from the
  store, the DEM slope rule, indicators, suggestions);
- `build_one_map`: the planar overlay of every polygon plan and the patches into faces.

Prints both times, the patches, faces and peak memory per scale, and how the time grows between the
first and the last scale (issue 3: at most 11x the time for 10x the data).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import run_child  # noqa: E402
from province import generate  # noqa: E402

from multiplan.ingest import LoadOptions, load_plan  # noqa: E402
from multiplan.specs import LAYER_IDS  # noqa: E402
from multiplan.store import open_store  # noqa: E402

CHILD = """
import json, sys, time
from multiplan.detection import run_detection
from multiplan.onemap import build_one_map
from multiplan.store import open_store
store_path, dem, out = sys.argv[1], sys.argv[2], sys.argv[3]
with open_store(store_path) as store:
    t0 = time.perf_counter()
    run = run_detection(store, rasters={"dem": dem})
    t1 = time.perf_counter()
    frames = {lid: store.read_features(lid, v) for lid, v in run["versions"].items()}
    patches = run["patches"][["rule", "severity", "geometry"]]  # what the one map needs, as `onemap` keeps
    n_patches, rules = len(patches), {r["rule"]: r["seconds"] for r in run["rules"]}
    del run
    t2 = time.perf_counter()
    one_map = build_one_map(frames, patches)
    t3 = time.perf_counter()
with open(out, "w") as fh:  # the run's last line is truncated; the figures go to a file
    json.dump({"detect_s": t1 - t0, "read_s": t2 - t1, "one_map_s": t3 - t2, "patches": n_patches,
               "faces": len(one_map), "rules": rules}, fh)
print("done")
"""


def _store(scale: float, work: Path) -> tuple[Path, Path, int]:
    folder = generate(scale)
    path = work / f"province-s{scale:g}.gpkg"
    with open_store(str(path)) as store:
        store.init()
        if len(store.versions()) < len(LAYER_IDS):
            for layer in LAYER_IDS:
                load_plan(store, layer, folder / f"{layer}.gpkg", LoadOptions(processes=True))
        features = sum(v.report.get("counts", {}).get("loaded", 0) for v in store.versions())
    return path, folder / "dem.tif", features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="0.1,1")
    parser.add_argument("--work", type=Path, help="keep the stores here (default: a temporary folder)")
    parser.add_argument("--verbose", action="store_true", help="print each rule's seconds")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="multiplan-bench-whole-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        path, dem, features = _store(scale, work)
        out = work / f"figures-s{scale:g}.json"
        run = run_child(f"scale {scale:g}", [sys.executable, "-c", CHILD, str(path), str(dem), str(out)])
        if not run.ok:
            print(f"scale {scale:g}: FAILED {run.note}")
            return
        figures = json.loads(out.read_text())
        rows.append((scale, features, figures, run))
        if args.verbose:
            print(f"scale {scale:g} rules (s): " + ", ".join(f"{k} {v:.1f}" for k, v in figures["rules"].items()))
    print(f"\n{'scale':>6}{'features':>11}{'detect s':>10}{'read s':>8}{'one map s':>11}{'total s':>9}"
          f"{'patches':>10}{'faces':>11}{'peak MB':>9}")
    for scale, features, f, run in rows:
        total = f["detect_s"] + f["read_s"] + f["one_map_s"]
        print(f"{scale:>6g}{features:>11,}{f['detect_s']:>10.1f}{f['read_s']:>8.1f}{f['one_map_s']:>11.1f}"
              f"{total:>9.1f}{f['patches']:>10,}{f['faces']:>11,}{run.peak_mb:>9,.0f}")
    if len(rows) > 1:
        (_, n0, f0, _), (_, n1, f1, _) = rows[0], rows[-1]
        t0 = f0["detect_s"] + f0["read_s"] + f0["one_map_s"]
        t1 = f1["detect_s"] + f1["read_s"] + f1["one_map_s"]
        data, growth = n1 / n0, t1 / t0
        goal = 1.1 * data
        print(f"\n{data:.1f}x the data took {growth:.1f}x the time (goal: at most {goal:.0f}x): "
              f"{'met' if growth <= goal else 'NOT met'}")


if __name__ == "__main__":
    main()
