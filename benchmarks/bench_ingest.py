"""Ingest benchmark: one generated land-use layer loaded into PostGIS three ways, side by side.

    .venv/bin/python benchmarks/bench_ingest.py [--features 200000] [--big 2000000]

Peers, each in its own process on the same file and the same server: multiplan (the CLI's `load`, with
validation, repair, classification, areas and coverage QC, into a store initialised beforehand),
ogr2ogr (GDAL's PostgreSQL driver) and geopandas.read_file + to_postgis. Prints features per second and
peak memory, and with --big the peak memory of multiplan streaming a file of that many features. A
one-feature load of the same layer shows what any load costs before its work (start-up and exit).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pyogrio.raw  # noqa: E402
from _common import Run, postgis, run_child  # noqa: E402


def _fresh_store(url: str) -> str:
    """A store in a schema of its own, initialised (untimed: a bureau sets its store up once)."""
    import psycopg

    schema = "b_" + uuid.uuid4().hex[:8]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = f"{url}?options=-csearch_path%3D{schema},public"
    subprocess.run([_cli(), "--store", store, "init"], check=True, capture_output=True)
    return store


def _cli() -> str:
    return str(Path(sys.executable).with_name("multiplan"))


def _loaded(out: str) -> str:
    report = json.loads(out)
    return f"{report['counts']['loaded']} loaded; {len(report['quality']['overlaps'])} overlaps"


def _load(name: str, url: str, path: Path) -> Run:
    """multiplan's peer: the CLI's load, as a planner runs it, into a fresh store."""
    return run_child(name, [_cli(), "--store", _fresh_store(url), "load", "land_use", str(path), "--json"],
                     note=_loaded)


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
        one_path = work / "one.gpkg"  # the same layer's first feature: what any load costs before its work
        meta, fids, geometry, values = pyogrio.raw.read(path, max_features=1, return_fids=True)
        pyogrio.raw.write(one_path, geometry, values, fields=meta["fields"], layer="land_use", driver="GPKG",
                          geometry_type="Polygon", crs=meta["crs"])
        py = sys.executable
        with postgis(args.pg_url) as url:
            pg = url.replace("postgresql://", "").split("@")
            user, rest = pg[0], pg[1]
            hostport, db = rest.split("/")
            host, port = hostport.split(":")
            runs = [
                _load("multiplan", url, path),
                run_child("ogr2ogr", ["ogr2ogr", "-f", "PostgreSQL", f"PG:host={host} port={port} user={user} dbname={db}",
                                      str(path), "-nln", "ogr_land_use", "-overwrite", "-lco", "GEOMETRY_NAME=geom",
                                      "-lco", "SPATIAL_INDEX=GIST", "-gt", "65536"]),
                run_child("geopandas.to_postgis", [py, "-c", TO_POSTGIS, url, str(path)]),
                _load("multiplan, one feature (start-up)", url, one_path),
            ]
            if args.big:
                big_path = work / "big.gpkg"
                print(_generate(args.big, big_path, 7))
                runs.append(_load(f"multiplan, {args.big:,} features", url, big_path))
        base = runs[0].seconds
        print(f"\n{'method':<34}{'seconds':>9}{'features/s':>13}{'peak MB':>10}{'vs multiplan':>14}  note")
        # peak MB: the largest total resident memory of the peer's process tree (workers included)
        for r in runs:
            n = args.big if r.name.startswith("multiplan,") else args.features
            ratio = f"{r.seconds / base:.2f}x" if not r.name.startswith("multiplan,") else ""
            if r.name.endswith("(start-up)"):  # a floor, not a peer
                print(f"{r.name:<34}{r.seconds:>9.2f}{'':>13}{r.peak_mb:>10,.0f}{ratio:>14}  "
                      f"{'' if r.ok else 'FAILED: '}{r.note}")
                continue
            print(f"{r.name:<34}{r.seconds:>9.2f}{n / r.seconds:>13,.0f}{r.peak_mb:>10,.0f}{ratio:>14}  "
                  f"{'' if r.ok else 'FAILED: '}{r.note}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
