"""Shared pieces of the benchmarks: a throwaway PostGIS, child-process timing, generated plans."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

PGBIN = Path("/usr/lib/postgresql/15/bin")


def _free_port(start: int = 56432) -> int:
    port = start
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
        port += 1


@contextmanager
def postgis(url: str | None = None):
    """Yield a PostGIS URL: ``url`` (or $MULTIPLAN_BENCH_DATABASE_URL), else a throwaway cluster."""
    url = url or os.environ.get("MULTIPLAN_BENCH_DATABASE_URL")
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="multiplan-bench-pg."))
    port = _free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run([*as_pg, PGBIN / "initdb", "-D", folder / "data", "-U", "postgres", "-A", "trust"],
                   check=True, capture_output=True)
    # settings a production server would use for bulk work; same server for every peer
    opts = (f"-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c max_wal_size=4GB "
            "-c maintenance_work_mem=512MB -c synchronous_commit=off -c max_parallel_workers_per_gather=2")
    subprocess.run([*as_pg, PGBIN / "pg_ctl", "-D", folder / "data", "-o", opts, "-l", folder / "log", "-w", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qc",
                        "CREATE DATABASE bench"], check=True)
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "bench", "-qc",
                        "CREATE EXTENSION postgis"], check=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/bench"
    finally:
        subprocess.run([*as_pg, PGBIN / "pg_ctl", "-D", folder / "data", "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Run:
    name: str
    seconds: float
    peak_mb: float
    ok: bool
    note: str = ""


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc (MB)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def run_child(name: str, argv: list[str], env: dict | None = None, note: Callable[[str], str] | None = None) -> Run:
    """Run ``argv``; return its wall time and the peak of the summed memory of its process tree, and a note:
    ``note(stdout)``, else the last line of its output.

    The peak is sampled every 50 ms (ru_maxrss would not do: Linux carries it across exec from the
    parent, and it ignores worker processes). Output goes to files: a pipe left unread would stall the
    child once it filled.
    """
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out_file, stderr=err_file, env={**os.environ, **(env or {})})
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_mb(proc.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read().decode(), err_file.read().decode()
    ok = proc.returncode == 0
    if ok and note is not None:
        return Run(name, seconds, peak, ok, note(out)[:200])
    lines = (out if ok else err).strip().splitlines()
    return Run(name, seconds, peak, ok, lines[-1][:200] if lines else "")


def land_use_cells(n: int, seed: int = 42, vertices: int = 20) -> gpd.GeoDataFrame:
    """``n`` Voronoi cells over north Hainan with about ``vertices`` vertices each, as a land-use plan."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = 108.9, 18.6, 110.9, 20.0
    pts = rng.uniform([x0, y0], [x1, y1], (n, 2))
    frame = shapely.box(x0, y0, x1, y1)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame))
    cells = shapely.intersection(cells, frame)
    # Voronoi cells have ~6 corners; add points along edges (both sides get the same ones)
    spacing = np.sqrt((x1 - x0) * (y1 - y0) / n) / (vertices / 6 * 1.2)
    cells = shapely.orient_polygons(shapely.segmentize(cells, spacing))  # as GIS software writes them
    codes = np.array(["010", "020", "030", "040", "050", "060", "070", "080", "090", "100"])
    return gpd.GeoDataFrame({
        "BSM": [f"4690990{i:09d}" for i in range(len(cells))],
        "YTQLXDM": codes[rng.integers(0, len(codes), len(cells))],
        "GZQLXDM": np.array(["010", "020", "030", "040"])[rng.integers(0, 4, len(cells))],
        "XZQDM": "469099",
        "BZ": "基准测试",
    }, geometry=cells, crs=4490)
