"""Site-check latency on province-scale plans, in both stores, beside two baselines.

    .venv/bin/python benchmarks/bench_sitecheck.py --scale 1 --sites 1000

Generates (once) the province's twelve plans (benchmarks/province.py), loads them into a GeoPackage store
and a PostGIS store through `load_plan`, then times, for the same sites:

- **multiplan**: `check_site` (every layer, control lines, networks, DEM terrain, every rule, the verdict)
  plus the canonical JSON of the report, in each store, after a warm-up;
- **PostGIS per layer**: one plain query per layer, `ST_Intersects` + `ST_Intersection` +
  `ST_Area(geography)` (lengths for the networks), the areas summed by class: no rules, no report;
- **geopandas.clip per layer**: every layer in memory, `geopandas.clip` + areas in EPSG:4546, on a
  sample of the sites (it is slow).

Prints p50 / p95 / mean latency per check and the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import postgis  # noqa: E402
from province import generate, sites  # noqa: E402

from multiplan.ingest import LoadOptions, load_plan  # noqa: E402
from multiplan.sitecheck import canonical_json, check_site  # noqa: E402
from multiplan.specs import LAYER_IDS, load_layer_specs  # noqa: E402
from multiplan.store import open_store  # noqa: E402


def _load(url: str, folder: Path) -> float:
    started = time.perf_counter()
    with open_store(url) as store:
        store.init()
        if len(store.versions()) == len(LAYER_IDS):
            return 0.0
        for layer in LAYER_IDS:
            load_plan(store, layer, folder / f"{layer}.gpkg", LoadOptions(processes=True))
    return time.perf_counter() - started


def _stats(ms: list[float]) -> dict[str, float]:
    values = np.array(ms)
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "mean": float(values.mean()), "n": len(values)}


def time_multiplan(url: str, shapes: list, dem: Path, warmup: int
                   ) -> tuple[dict[str, float], dict[str, int], list[float]]:
    verdicts: dict[str, int] = {}
    with open_store(url) as store:
        for site in shapes[:warmup]:
            check_site(site, store, rasters={"dem": dem})
        ms = []
        for site in shapes:
            started = time.perf_counter()
            report = check_site(site, store, rasters={"dem": dem})
            canonical_json(report, indent=None)  # what POST /api/v1/site-checks sends
            ms.append((time.perf_counter() - started) * 1000)
            verdicts[report["verdict"]] = verdicts.get(report["verdict"], 0) + 1
    return _stats(ms), verdicts, ms


def time_postgis_per_layer(url: str, shapes: list, warmup: int) -> dict[str, float]:
    import psycopg

    specs = load_layer_specs()
    with open_store(url) as store:
        versions = {v.layer: v.version for v in store.versions()}
    with psycopg.connect(url, autocommit=True) as conn:
        def one(site):
            wkb = shapely.to_wkb(site)
            for layer in LAYER_IDS:
                if specs[layer].geometry == "polygon":
                    sql = (f"SELECT ydyh_code, SUM(ST_Area(ST_Intersection(geom, s)::geography)) FROM plan_{layer}, "
                           "(SELECT ST_SetSRID(ST_GeomFromWKB(%s), 4490) AS s) q "
                           "WHERE version = %s AND ST_Intersects(geom, s) GROUP BY ydyh_code")
                else:
                    sql = (f"SELECT ydyh_code, SUM(ST_Length(ST_Intersection(geom, s)::geography)) FROM plan_{layer}, "
                           "(SELECT ST_SetSRID(ST_GeomFromWKB(%s), 4490) AS s) q "
                           "WHERE version = %s AND ST_Intersects(geom, s) GROUP BY ydyh_code")
                conn.execute(sql, (wkb, versions[layer])).fetchall()
        for site in shapes[:warmup]:
            one(site)
        ms = []
        for site in shapes:
            started = time.perf_counter()
            one(site)
            ms.append((time.perf_counter() - started) * 1000)
    return _stats(ms)


def time_geopandas_clip(url: str, shapes: list) -> dict[str, float]:
    import geopandas as gpd

    with open_store(url) as store:
        frames = {v.layer: store.read_features(v.layer, v.version) for v in store.versions()}
    for frame in frames.values():
        frame.sindex  # noqa: B018  (built once, as a careful user would)
    ms = []
    for site in shapes:
        started = time.perf_counter()
        for frame in frames.values():
            clipped = gpd.clip(frame, site)
            if not clipped.empty:
                metric = clipped.to_crs(4546)
                measure = metric.area if clipped.geom_type.str.contains("Polygon").all() else metric.length
                measure.groupby(clipped["ydyh_code"]).sum()
        ms.append((time.perf_counter() - started) * 1000)
    return _stats(ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--clip-sites", type=int, default=100, help="sites for the (slow) geopandas baseline")
    parser.add_argument("--pg-url")
    parser.add_argument("--work", type=Path, help="keep the stores here (default: a temporary folder)")
    args = parser.parse_args()

    folder = generate(args.scale)
    dem = folder / "dem.tif"
    shapes = sites(args.sites)
    areas = [s.area for s in shapes]
    print(f"data: {folder} (scale {args.scale:g}); {len(shapes)} sites, "
          f"{min(len(s.exterior.coords) - 1 for s in shapes)}-{max(len(s.exterior.coords) - 1 for s in shapes)} "
          f"vertices, median {statistics.median(areas) * 1.17e4:.2f} km² (approx.)", flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="multiplan-bench-sites."))
    work.mkdir(parents=True, exist_ok=True)
    gpkg = str(work / "province.gpkg")
    rows = []
    same_sites = {}  # multiplan on the sites the geopandas baseline runs: the ratio compares like with like
    with postgis(args.pg_url) as pg_url:
        for name, url in (("GeoPackage", gpkg), ("PostGIS", pg_url)):
            seconds = _load(url, folder)
            print(f"loaded the province into {name} in {seconds:.0f} s", flush=True)
        for name, url in (("GeoPackage", gpkg), ("PostGIS", pg_url)):
            stats, verdicts, ms = time_multiplan(url, shapes, dem, args.warmup)
            rows.append((f"multiplan check_site, {name}", stats, json.dumps(verdicts)))
            same_sites[rows[-1][0]] = _stats(ms[: args.clip_sites])
            print(rows[-1], flush=True)
        rows.append(("plain PostGIS query per layer", time_postgis_per_layer(pg_url, shapes, args.warmup),
                     "areas by class only"))
        print(rows[-1], flush=True)
        rows.append(("geopandas.clip per layer", time_geopandas_clip(gpkg, shapes[: args.clip_sites]),
                     "areas by class only"))
    print()
    print(f"{'method':<38} {'sites':>6} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9}  note")
    for name, s, note in rows:
        print(f"{name:<38} {s['n']:>6} {s['p50']:>9.1f} {s['p95']:>9.1f} {s['mean']:>9.1f}  {note}")
    clip = rows[-1][1]
    print(f"\nagainst geopandas.clip on the same {clip['n']} sites:")
    for name, s in same_sites.items():
        print(f"{name}: p50 {s['p50']:.1f} ms, p95 {s['p95']:.1f} ms, mean {s['mean']:.1f} ms; geopandas.clip / "
              f"multiplan = {clip['p95'] / s['p95']:.1f}x at p95, {clip['p50'] / s['p50']:.1f}x at p50, "
              f"{clip['mean'] / s['mean']:.1f}x on the mean")


if __name__ == "__main__":
    main()
