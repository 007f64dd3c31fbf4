"""Ingest benchmark: one generated land-use layer loaded into PostGIS three ways, side by side.

    .venv/bin/python benchmarks/bench_ingest.py [--features 200000] [--big 2000000]

Peers, each in its own process on the same file and the same server: multiplan (validation, repair,
classification, areas and coverage QC included), ogr2ogr (GDAL's PostgreSQL driver) and
geopandas.read_file + to_postgis. Prints features per second and peak memory, and with --big the peak
memory of multiplan streaming a file of that many features.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import postgis, run_child  # noqa: E402

MULTIPLAN = """
import sys, uuid, psycopg
from multiplan.store import open_store
from multiplan.ingest import LoadOptions, load_plan
url, path = sys.argv[1], sys.argv[2]
schema = "b_" + uuid.uuid4().hex[:8]
with psycopg.connect(url, autocommit=True) as c:
    c.execute(f"CREATE SCHEMA {schema}")
with open_store(f"{url}?options=-csearch_path%3D{schema},public") as store:
    store.init()
    report = load_plan(store, "land_use", path, LoadOptions(processes=True))
print(report["counts"]["loaded"], "loaded;", len(report["quality"]["overlaps"]), "overlaps")
"""

# The same start-up and exit with no load: Python, the imports, a connection and a fresh store's set-up.
MULTIPLAN_FLOOR = MULTIPLAN.split("    report = load_plan")[0] + 'print("no load")\n'

TO_POSTGIS = """
import sys, geopandas as gpd, sqlalchemy as sa
url, path = sys.argv[1], sys.argv[2]
frame = gpd.read_file(path, engine="pyogrio")
engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
frame.to_postgis("gpd_land_use", engine, if_exists="replace", index=False)
print(len(frame), "loaded")
"""


GENERATE = """
import sys
sys.path.insert(0, sys.argv[3])
from _common import land_use_cells
frame = land_use_cells(int(sys.argv[1]), seed=int(sys.argv[4]))
frame.to_file(sys.argv[2], layer="land_use", engine="pyogrio")
print(f"{len(frame):,} polygons, {frame.geometry.count_coordinates().mean():.1f} vertices each on average")
"""


def _generate(n: int, path: Path, seed: int) -> str:
    """Make the data in a child process, so this one stays small while it starts the peers."""
    done = subprocess.run([sys.executable, "-c", GENERATE, str(n), str(path), str(Path(__file__).parent), str(seed)],
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=0, help="also stream a file of this many features (memory)")
    parser.add_argument("--pg-url", help="use this PostGIS instead of a throwaway one")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="multiplan-bench-"))
    try:
        path = work / "land_use.gpkg"
        print(_generate(args.features, path, 42) + f", file {path.stat().st_size / 1e6:.0f} MB")
        py = sys.executable
        with postgis(args.pg_url) as url:
            pg = url.replace("postgresql://", "").split("@")
            user, rest = pg[0], pg[1]
            hostport, db = rest.split("/")
            host, port = hostport.split(":")
            runs = [
                run_child("multiplan", [py, "-c", MULTIPLAN, url, str(path)]),
                run_child("ogr2ogr", ["ogr2ogr", "-f", "PostgreSQL", f"PG:host={host} port={port} user={user} dbname={db}",
                                      str(path), "-nln", "ogr_land_use", "-overwrite", "-lco", "GEOMETRY_NAME=geom",
                                      "-lco", "SPATIAL_INDEX=GIST", "-gt", "65536"]),
                run_child("geopandas.to_postgis", [py, "-c", TO_POSTGIS, url, str(path)]),
                run_child("multiplan start-up only", [py, "-c", MULTIPLAN_FLOOR, url, str(path)]),
            ]
            if args.big:
                big_path = work / "big.gpkg"
                print(_generate(args.big, big_path, 7))
                runs.append(run_child(f"multiplan, {args.big:,} features", [py, "-c", MULTIPLAN, url, str(big_path)]))
        base = runs[0].seconds
        print(f"\n{'method':<34}{'seconds':>9}{'features/s':>13}{'peak MB':>10}{'vs multiplan':>14}  note")
        # peak MB: the largest total resident memory of the peer's process tree (workers included)
        for r in runs:
            n = args.big if r.name.startswith("multiplan,") else args.features
            ratio = f"{r.seconds / base:.2f}x" if not r.name.startswith("multiplan,") else ""
            if r.name.endswith("start-up only"):  # a floor, not a peer: no features go anywhere
                print(f"{r.name:<34}{r.seconds:>9.2f}{'':>13}{r.peak_mb:>10,.0f}{ratio:>14}  "
                      f"{'' if r.ok else 'FAILED: '}{r.note}")
                continue
            print(f"{r.name:<34}{r.seconds:>9.2f}{n / r.seconds:>13,.0f}{r.peak_mb:>10,.0f}{ratio:>14}  "
                  f"{'' if r.ok else 'FAILED: '}{r.note}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
