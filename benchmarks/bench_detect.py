"""Conflict-detection benchmark: one overlap rule over two generated data sets, peers side by side.

    .venv/bin/python benchmarks/bench_detect.py [--scale 0.1] [--sets simple,province] [--pg-url URL]

Data (written once per set to GeoParquet, read by every peer):

- simple: 200,000 x scale Voronoi land-use cells (~21 vertices) against 50,000 x scale noisy star
  polygons (~276 vertices) over north Hainan;
- province: 300,000 x scale land-use cells plus 60,000 x scale forest polygons against 3,000 x scale
  red-line polygons, most with 5,000-50,000 vertices (long wiggly boundaries, digitising noise of a
  third of the vertex spacing).

Polygon sizes shrink with 1/sqrt(scale) so a smaller scale keeps the same cells-per-polygon ratio.

Peers, each in its own child process (wall time and peak memory of its process tree): multiplan
``conflicts.detect`` (rule ``farmland`` with its area tolerance off, over frames shaped like store
frames), geopandas.overlay(how="intersection"), PostGIS (GiST, parallel workers; plain and with
ST_Subdivide of the big side, pieces unioned back per pair), DuckDB spatial, SedonaDB, and the naive
GEOS bound (STRtree intersects + shapely.intersection on exactly those pairs, 1 and 2 threads).
Every peer's output geometries are measured the same way (multiplan.crs.ellipsoidal_area); pairs are
those with a polygonal intersection of positive area. "compute s" is timed inside the child around the
peer's own work (not reading the parquet, not measuring the areas); ratios are on compute s. Before
the clock starts every peer hands Arrow's cached reader buffers back, so no peak carries them; the
Python peers read the parquet in batches of about 32 MB.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import postgis, run_child  # noqa: E402

HERE = str(Path(__file__).resolve().parent)

GENERATE = """
import sys
import numpy as np, pandas as pd, geopandas as gpd, shapely
sys.path.insert(0, sys.argv[1])
from _common import land_use_cells
work, which, scale = sys.argv[2], sys.argv[3], float(sys.argv[4])
rng = np.random.default_rng(7)
x0, y0, x1, y1 = 108.9, 18.6, 110.9, 20.0
grow = 1 / np.sqrt(scale)

def stars(n, radius, vertices, waves):
    cx = rng.uniform(x0 + 0.05, x1 - 0.05, n)
    cy = rng.uniform(y0 + 0.05, y1 - 0.05, n)
    out = []
    for i in range(n):
        k = int(vertices[i])
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = np.ones(k)
        for w in range(1, waves + 1):  # smooth wiggles, decaying with frequency
            r += rng.normal(0, 0.25 / w) * np.sin(w * t + rng.uniform(0, 2 * np.pi))
        r += rng.normal(0, 0.3, k) * 2 * np.pi / k  # digitising noise: a third of the vertex spacing
        r = radius[i] * np.clip(r, 0.15, None)
        xy = np.column_stack([cx[i] + r * np.cos(t) / np.cos(np.radians(cy[i])), cy[i] + r * np.sin(t)])
        out.append(shapely.polygons(np.vstack([xy, xy[:1]])))
    return shapely.orient_polygons(shapely.make_valid(np.array(out, dtype=object)))

if which == "simple":
    a = land_use_cells(int(200_000 * scale), seed=42)
    m = int(50_000 * scale)
    b = stars(m, rng.lognormal(np.log(0.0035), 0.4, m) * grow, rng.integers(250, 302, m), 12)
else:  # side A: the land-use coverage and the forest plan's polygons (fewer, larger, overlapping it)
    a = land_use_cells(int(300_000 * scale), seed=43)
    a = gpd.GeoDataFrame(pd.concat([a, land_use_cells(int(60_000 * scale), seed=44)], ignore_index=True), crs=4490)
    m = int(3_000 * scale)
    big = rng.random(m) < 0.7
    vertices = np.where(big, np.exp(rng.uniform(np.log(5_000), np.log(50_000), m)), rng.integers(500, 5_000, m))
    b = stars(m, rng.lognormal(np.log(0.009), 0.5, m) * grow, vertices, 200)
b = b[shapely.get_type_id(b) != 7]
a = gpd.GeoDataFrame({"aid": np.arange(len(a), dtype=np.int64), "ydyh_code": "0701",
                      "orig_code": a["YTQLXDM"].to_numpy()}, geometry=a.geometry.values, crs=4490)
b = gpd.GeoDataFrame({"bid": np.arange(len(b), dtype=np.int64), "ydyh_code": "0103", "orig_code": "0103"},
                     geometry=b, crs=4490)
a.to_parquet(f"{work}/a.parquet", index=False)
b.to_parquet(f"{work}/b.parquet", index=False)
na, nb = a.geometry.count_coordinates(), b.geometry.count_coordinates()
print(f"{which}: A {len(a):,} polygons, {na.mean():.1f} vertices avg; B {len(b):,} polygons, "
      f"{nb.mean():.0f} vertices avg (max {nb.max():,}, {(nb >= 5000).sum():,} with >= 5,000)")
"""

# Every child: reads what it needs, times its own work, writes pairs + areas to <work>/<tag>.npz and
# prints one JSON line.
PRELUDE = """
import sys, json, time
import numpy as np, shapely, geopandas as gpd
from multiplan.crs import ellipsoidal_area
work, tag = sys.argv[1], sys.argv[2]

def read_parquet(path, columns=None):
    # in batches of about 32 MB: read whole, the red lines' WKB, its Python bytes and the geometries
    # would all be resident at once (4.2 GB at full province scale, more than any peer's work)
    import pandas as pd, pyarrow.parquet as pq
    pf = pq.ParquetFile(path)
    size = sum(pf.metadata.row_group(i).total_byte_size for i in range(pf.num_row_groups))
    rows = max(64, int(pf.metadata.num_rows * (32 << 20) / max(size, 1)))
    frames, geoms = [], []
    for batch in pf.iter_batches(batch_size=rows, columns=columns):
        frames.append(batch.drop_columns(["geometry"]).to_pandas())
        geoms.append(shapely.from_wkb(batch.column("geometry").to_numpy(zero_copy_only=False)))
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry=np.concatenate(geoms), crs=4490)

def start_clock():
    # Arrow's allocator keeps the parquet reader's freed buffers for a few seconds: a peer that starts
    # at once would carry them in its peak, a slow one not. Released here, every peak is the peer's own.
    import pyarrow
    pyarrow.default_memory_pool().release_unused()
    return time.perf_counter()

def finish(seconds, aid, bid, geoms):
    geoms = np.asarray(geoms, dtype=object)
    ok = ~shapely.is_missing(geoms)
    area = np.zeros(len(geoms))
    area[ok] = ellipsoidal_area(geoms[ok])
    np.savez(f"{work}/{tag}.npz", aid=np.asarray(aid, dtype=np.int64), bid=np.asarray(bid, dtype=np.int64),
             area=area)
    print(json.dumps({"seconds": seconds}))
"""

MULTIPLAN = PRELUDE + """
import dataclasses, pandas as pd
from multiplan.conflicts import detect
from multiplan.rules import load_rules
rule = dataclasses.replace(load_rules()["farmland"], tolerance={})  # every positive-area patch, like the peers

def store_frame(path, key):
    f = read_parquet(path)
    return gpd.GeoDataFrame({"feature_key": f[key].astype(str).to_numpy(), "ydyh_code": f["ydyh_code"].to_numpy(),
                             "orig_code": f["orig_code"].to_numpy(), "zone_code": None, "xzqdm": "469099",
                             "source_attributes": [{"BZ": "基准测试"}] * len(f)}, geometry=f.geometry.values, crs=4490)

frames = {"land_use": store_frame(f"{work}/a.parquet", "aid"), "farmland": store_frame(f"{work}/b.parquet", "bid")}
t = start_clock()
found = detect(rule, frames, {"land_use": 1, "farmland": 1})
seconds = time.perf_counter() - t
p = found.patches
finish(seconds, p["feature_a"].astype(int), p["feature_b"].astype(int), p.geometry.values)
"""

OVERLAY = PRELUDE + """
a = read_parquet(f"{work}/a.parquet", ["aid", "geometry"])
b = read_parquet(f"{work}/b.parquet", ["bid", "geometry"])
t = start_clock()
out = gpd.overlay(a, b, how="intersection")
seconds = time.perf_counter() - t
finish(seconds, out["aid"], out["bid"], out.geometry.values)
"""

NAIVE = PRELUDE + """
from concurrent.futures import ThreadPoolExecutor
threads = int(sys.argv[3])
a = read_parquet(f"{work}/a.parquet", ["geometry"]).geometry.values._data
b = read_parquet(f"{work}/b.parquet", ["geometry"]).geometry.values._data
t = start_clock()
left, right = shapely.STRtree(b).query(a, predicate="intersects")
if threads == 1:
    pieces = shapely.intersection(a[left], b[right])
else:  # shapely releases the GIL in its vectorised calls; interleaved chunks balance big and small pairs
    chunks = [np.arange(i, len(left), threads) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(lambda c: shapely.intersection(a[left[c]], b[right[c]]), chunks))
    pieces = np.empty(len(left), dtype=object)
    for c, p in zip(chunks, parts):
        pieces[c] = p
seconds = time.perf_counter() - t
finish(seconds, left, right, pieces)
"""

PG_LOAD = """
import sys, psycopg, geopandas as gpd, shapely
url, work = sys.argv[1], sys.argv[2]
with psycopg.connect(url, autocommit=True) as c:
    c.execute("DROP SCHEMA IF EXISTS bench_detect CASCADE; CREATE SCHEMA bench_detect")
    for side, key in (("a", "aid"), ("b", "bid")):
        f = gpd.read_parquet(f"{work}/{side}.parquet")
        c.execute(f"CREATE UNLOGGED TABLE bench_detect.{side}_raw ({key} bigint, wkb bytea)")
        with c.cursor().copy(f"COPY bench_detect.{side}_raw FROM STDIN") as copy:
            for k, w in zip(f[key].tolist(), shapely.to_wkb(f.geometry.values._data).tolist()):
                copy.write_row((k, w))
        c.execute(f"CREATE TABLE bench_detect.{side} AS SELECT {key}, ST_SetSRID(ST_GeomFromWKB(wkb), 4490) "
                  f"AS geom FROM bench_detect.{side}_raw; DROP TABLE bench_detect.{side}_raw; "
                  f"CREATE INDEX ON bench_detect.{side} USING gist (geom); ANALYZE bench_detect.{side}; "
                  f"ALTER TABLE bench_detect.{side} SET (parallel_workers = 2)")  # small tables get 1 else
print("loaded")
"""

PG = PRELUDE + """
import psycopg
url, subdivide = sys.argv[3], sys.argv[4] == "1"
with psycopg.connect(url, autocommit=True) as c:
    c.execute("SET search_path = bench_detect, public; SET max_parallel_workers_per_gather = 2; "
              "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; "
              "SET work_mem = '256MB'")
    t = start_clock()
    if subdivide:
        c.execute("DROP TABLE IF EXISTS b_sub; CREATE TABLE b_sub AS SELECT bid, ST_Subdivide(geom, 256) AS geom FROM b; "
                  "CREATE INDEX ON b_sub USING gist (geom); ANALYZE b_sub; ALTER TABLE b_sub SET (parallel_workers = 2)")
        q = ("SELECT a.aid, s.bid, ST_AsBinary(ST_Union(ST_CollectionExtract(ST_Intersection(a.geom, s.geom), 3))) "
             "FROM a JOIN b_sub s ON ST_Intersects(a.geom, s.geom) GROUP BY a.aid, s.bid")
    else:
        q = ("SELECT a.aid, b.bid, ST_AsBinary(ST_Intersection(a.geom, b.geom)) "
             "FROM a JOIN b ON ST_Intersects(a.geom, b.geom)")
    rows = c.execute(q).fetchall()
    seconds = time.perf_counter() - t
    if subdivide:
        c.execute("DROP TABLE b_sub")
aid, bid, wkb = zip(*rows) if rows else ((), (), ())
finish(seconds, aid, bid, shapely.from_wkb(list(wkb)))
"""

DUCKDB = PRELUDE + """
import glob, duckdb, duckdb_ext
ext = glob.glob(f"{duckdb_ext.__path__[0]}/extensions/v{duckdb.__version__}/*/spatial.duckdb_extension")[0]
c = duckdb.connect()
c.execute(f"LOAD '{ext}'; SET threads = 2")
t = start_clock()
rows = c.execute(f"SELECT a.aid, b.bid, ST_AsWKB(ST_Intersection(a.geometry, b.geometry)) "
                 f"FROM read_parquet('{work}/a.parquet') a JOIN read_parquet('{work}/b.parquet') b "
                 f"ON ST_Intersects(a.geometry, b.geometry)").fetchnumpy()
seconds = time.perf_counter() - t
finish(seconds, rows["aid"], rows["bid"], shapely.from_wkb([bytes(w) for w in rows[list(rows)[2]]]))
"""

SEDONA = PRELUDE + """
import sedonadb
c = sedonadb.connect()
c.read_parquet(f"{work}/a.parquet").to_view("a")
c.read_parquet(f"{work}/b.parquet").to_view("b")
t = start_clock()
out = c.sql("SELECT a.aid, b.bid, ST_AsBinary(ST_Intersection(a.geometry, b.geometry)) AS g "
            "FROM a JOIN b ON ST_Intersects(a.geometry, b.geometry)").to_arrow_table()
seconds = time.perf_counter() - t
finish(seconds, out["aid"].to_numpy(), out["bid"].to_numpy(), shapely.from_wkb(out["g"].to_pylist()))
"""

GOALS = {
    # multiplan runs on both cores: the naive bound at the same core count is the two-thread one
    "simple": [("geopandas.overlay", 2.5), ("PostGIS parallel", 1.4), ("SedonaDB", 1.0), ("naive GEOS, 2 threads", 1 / 1.1)],
    "province": [("geopandas.overlay", 10.0), ("fastest peer", 2.0)],
}
# the province set's moonshot: further than the floor, and against the two-thread naive bound too
MOONSHOT = [("geopandas.overlay", 20.0), ("fastest peer", 4.0), ("naive GEOS, 2 threads", 6.0)]


def _pairs(path: Path) -> dict[tuple[int, int], float]:
    """Area per (A, B) pair, summing rows of one pair, keeping pairs with positive area."""
    z = np.load(path)
    out: dict[tuple[int, int], float] = {}
    for a, b, s in zip(z["aid"].tolist(), z["bid"].tolist(), z["area"].tolist(), strict=True):
        out[(a, b)] = out.get((a, b), 0.0) + s
    return {k: v for k, v in out.items() if v > 0}


def run_set(which: str, scale: float, url: str, work: Path, skip: set[str]) -> None:
    py = sys.executable
    done = subprocess.run([py, "-c", GENERATE, HERE, str(work), which, str(scale)],
                          check=True, capture_output=True, text=True)
    print("\n" + done.stdout.strip())
    subprocess.run([py, "-c", PG_LOAD, url, str(work)], check=True, capture_output=True, text=True)
    peers = [
        ("multiplan", [MULTIPLAN]),
        ("geopandas.overlay", [OVERLAY]),
        ("PostGIS parallel", [PG, url, "0"]),
        ("PostGIS parallel+subdivide", [PG, url, "1"]),
        ("DuckDB spatial", [DUCKDB]),
        ("SedonaDB", [SEDONA]),
        ("naive GEOS, 1 thread", [NAIVE, "1"]),
        ("naive GEOS, 2 threads", [NAIVE, "2"]),
    ]
    results = []
    for i, (name, (code, *extra)) in enumerate(peers):
        if name in skip:
            continue
        tag = f"{which}_{i}"
        run = run_child(name, [py, "-c", code, str(work), tag, *extra])
        seconds = json.loads(run.note)["seconds"] if run.ok else float("nan")
        pairs = _pairs(work / f"{tag}.npz") if run.ok else {}
        results.append((run, seconds, pairs))
    base_run, base_s, base = results[0]
    base_total = sum(base.values())
    print(f"\n{'peer':<28}{'compute s':>10}{'wall s':>8}{'pairs':>10}{'total area km²':>16}{'peak MB':>9}"
          f"{'vs multiplan':>13}  agreement with multiplan")
    for run, seconds, pairs in results:
        if not run.ok:
            print(f"{run.name:<28}{'':>10}{run.seconds:>8.1f}  FAILED: {run.note}")
            continue
        total = sum(pairs.values())
        common = pairs.keys() & base.keys()
        worst = max((abs(pairs[k] - base[k]) / max(base[k], 1e-9) for k in common), default=0.0)
        differ = len(pairs.keys() ^ base.keys())
        agree = (f"total {abs(total - base_total) / max(base_total, 1e-9):.1e} rel, worst pair {worst:.1e}, "
                 f"{differ} pairs differ")
        print(f"{run.name:<28}{seconds:>10.2f}{run.seconds:>8.1f}{len(pairs):>10,}{total / 1e6:>16.6f}"
              f"{run.peak_mb:>9,.0f}{seconds / base_s:>12.2f}x  {agree}")
    timed = {run.name: s for run, s, _ in results if run.ok}
    fastest = min((s for n, s in timed.items() if n != "multiplan" and not n.startswith("naive")),
                  default=float("nan"))
    for title, goals in ((f"goals ({which} set, scale {scale})", GOALS[which]),
                         ("moonshot", MOONSHOT if which == "province" else [])):
        if goals:
            print(f"\n{title}:")
        for peer, factor in goals:
            other = fastest if peer == "fastest peer" else timed.get(peer, float("nan"))
            speedup = other / base_s
            verdict = "met" if speedup >= factor else "NOT met"
            want = f">= {factor:g}x faster" if factor >= 1 else f"within {1 / factor:.1f}x"
            print(f"  vs {peer:<24} {want:<18} got {speedup:.2f}x  {verdict}")
        if goals is GOALS[which]:
            _memory_goal(which, base_run, results)


def _memory_goal(which: str, base_run, results: list) -> None:
    """Peak memory against the set's goal: under 4 GB (province), no more than geopandas.overlay's (simple)."""
    if which == "province":
        print(f"  peak memory < 4 GB          got {base_run.peak_mb:,.0f} MB  "
              f"{'met' if base_run.peak_mb < 4096 else 'NOT met'}")
    else:
        overlay_mb = next((run.peak_mb for run, _, _ in results if run.name == "geopandas.overlay"), float("nan"))
        print(f"  peak memory <= overlay's    got {base_run.peak_mb:,.0f} MB vs {overlay_mb:,.0f} MB  "
              f"{'met' if base_run.peak_mb <= overlay_mb else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--sets", default="simple,province")
    parser.add_argument("--skip", default="", help="comma-separated peer names to leave out")
    parser.add_argument("--pg-url", help="use this PostGIS instead of a throwaway one")
    args = parser.parse_args()
    # peer names hold ", " ("naive GEOS, 1 thread"): only a comma without a space after it separates
    skip = {s.strip() for s in re.split(r",(?! )", args.skip) if s.strip()}
    with postgis(args.pg_url) as url:
        for which in args.sets.split(","):
            work = Path(tempfile.mkdtemp(prefix=f"multiplan-bench-detect-{which}-"))
            try:
                run_set(which, args.scale, url, work, skip)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["psql", url, "-qc", "DROP SCHEMA IF EXISTS bench_detect CASCADE"], capture_output=True)


if __name__ == "__main__":
    main()
