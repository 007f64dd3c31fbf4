"""The web application under load: gunicorn on the province-scale plans in PostGIS, wrk on loopback.

    .venv/bin/python benchmarks/bench_web.py --scale 1 --duration 120 --soak 600

Loads the generated province (benchmarks/province.py) into PostGIS if needed, adds approval records with
sites and an API token, starts `multiplan serve` (gunicorn), warms it up, then runs wrk (or locust headless,
`--generator locust`) with 20 concurrent clients, each sending its next request as soon as the last one
is answered, for --duration seconds per workload:

- the site-check API (POST /api/v1/site-checks, as the approval system calls it);
- cached vector tiles (a fixed set of master-plan tiles, asked for again and again);
- uncached vector tiles (random tiles over the island at zoom 13-15);

and finally a mixed soak of --soak seconds, sampling the server's memory (all gunicorn processes) every
5 s. Prints p50/p95, errors and the memory at the start and the end of the soak.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import _tree_rss_mb, postgis  # noqa: E402
from bench_sitecheck import _load  # noqa: E402
from province import generate, sites  # noqa: E402

from multiplan import users  # noqa: E402
from multiplan.approvals import create_approval, list_approvals  # noqa: E402
from multiplan.cli.web import DEFAULT_THREADS, DEFAULT_WORKERS  # noqa: E402
from multiplan.store import open_store  # noqa: E402

BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(url: str, count: int, work: Path) -> tuple[str, Path, int]:
    """Approvals with sites, and a token for the load generator; returns (token, sites file, plan version)."""
    shapes = sites(count, seed=13)
    with open_store(url) as store:
        known = {a["code"] for a in list_approvals(store)}
        pairs = []
        for i, site in enumerate(shapes):
            code = f"2025-460000-99-01-{i:06d}"
            if code not in known:
                create_approval(store, {"code": code, "name": f"基准测试项目{i}", "applicant": "基准测试",
                                        "stage": "用地预审"}, actor="bench")
            pairs.append([code, json.loads(shapely.to_geojson(site))])
        if "bench" not in {u["username"] for u in users.list_users(store)}:
            users.add_user(store, "bench", "bench-password-1", "admin", actor="bench")
        token = users.issue_token(store, "bench", "bench_web", "bench")
        version = store.version("overall").version
    path = work / "sites.json"
    path.write_text(json.dumps(pairs), "utf-8")
    return token, path, version


def _wait(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/login", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not come up")


def _locust(host: str, mode: str, seconds: int, users_n: int, env: dict, work: Path) -> dict[str, dict]:
    prefix = work / f"locust-{mode}"
    subprocess.run([str(BIN / "locust"), "-f", str(Path(__file__).with_name("locustfile.py")), "--headless",
                    "-u", str(users_n), "-r", str(users_n), "-t", f"{seconds}s", "--host", host, "--csv", str(prefix),
                    "--only-summary", "--loglevel", "WARNING"],
                   env={**os.environ, **env, "MULTIPLAN_BENCH_MODE": mode}, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = {}
    with open(f"{prefix}_stats.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] != "Aggregated":
                rows[row["Name"]] = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                                     "p50": float(row["50%"]), "p95": float(row["95%"]),
                                     "rps": float(row["Requests/s"])}
    return rows


WRK_SCRIPT = """
-- one request per line of the requests file: METHOD <tab> path <tab> body (may be empty)
local lines = {}
for line in io.lines(os.getenv("MULTIPLAN_BENCH_REQUESTS")) do
  local method, path, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
  lines[#lines + 1] = {method, path, body}
end
local headers = {["Authorization"] = "Bearer " .. os.getenv("MULTIPLAN_BENCH_TOKEN"),
                 ["Content-Type"] = "application/json"}
function setup(thread) thread:set("seed", math.random(1, 1e9)) end
function init(args) math.randomseed(seed) end
request = function()
  local r = lines[math.random(#lines)]
  return wrk.format(r[1], r[2], headers, r[3] ~= "" and r[3] or nil)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %.3f %.3f\\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000))
end
"""

HOT_TILES = [(14, x, y) for x in range(13_270, 13_276) for y in range(7_230, 7_236)]  # as locustfile.py
ISLAND = (108.70, 18.30, 110.95, 20.05)
NAMES = {"sites": "POST /api/v1/site-checks", "tiles_cached": "tile (cached)", "tiles_uncached": "tile (uncached)",
         "mixed": "mixed"}


def _requests_file(mode: str, sites_file: Path, version: int, work: Path) -> Path:
    """The requests of one workload, one per line, for wrk to pick from at random."""
    rng = random.Random(5)
    out = []
    if mode in ("sites", "mixed"):
        out += [f"POST\t/api/v1/site-checks\t{json.dumps({'project_code': c, 'site': g}, separators=(',', ':'))}"
                for c, g in json.loads(sites_file.read_text("utf-8"))]
    if mode in ("tiles_cached", "mixed"):
        out += [f"GET\t/tiles/overall/{version}/{z}/{x}/{y}.pbf\t" for z, x, y in HOT_TILES] * (
            1 if mode != "mixed" else 14)  # mixed: about as many of each kind
    if mode in ("tiles_uncached", "mixed"):
        for _ in range(100_000 if mode != "mixed" else 500):
            z = rng.choice((13, 14, 15))
            lon, lat = rng.uniform(ISLAND[0], ISLAND[2]), rng.uniform(ISLAND[1], ISLAND[3])
            x = int((lon + 180) / 360 * 2 ** z)
            y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** z)
            out.append(f"GET\t/tiles/overall/{version}/{z}/{x}/{y}.pbf\t")
    path = work / f"requests-{mode}.txt"
    path.write_text("\n".join(out) + "\n", "utf-8")
    return path


def _wrk(host: str, mode: str, seconds: int, users_n: int, env: dict, work: Path) -> dict[str, dict]:
    """One workload under wrk (C, one event loop per thread: it leaves the cores to the server)."""
    script = work / "bench.lua"
    script.write_text(WRK_SCRIPT, "utf-8")
    requests = _requests_file(mode, Path(env["MULTIPLAN_BENCH_SITES"]), int(env["MULTIPLAN_BENCH_VERSION"]), work)
    done = subprocess.run(["wrk", "-t", "1", "-c", str(users_n), "-d", f"{seconds}s", "--timeout", "30s",
                           "-s", str(script), host],
                          env={**os.environ, "MULTIPLAN_BENCH_REQUESTS": str(requests),
                               "MULTIPLAN_BENCH_TOKEN": env["MULTIPLAN_BENCH_TOKEN"]},
                          capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    n, bad_status, socket_errors, micros, p50, p95 = line.split()[1:]
    if int(bad_status) or int(socket_errors):
        print(f"  {mode}: {bad_status} responses with an error status, {socket_errors} socket errors", flush=True)
    return {NAMES[mode]: {"requests": int(n), "failures": int(bad_status) + int(socket_errors),
                          "p50": float(p50), "p95": float(p95), "rps": int(n) / (int(micros) / 1e6)}}


def _load_generator(choice: str):
    if choice == "wrk" and not shutil.which("wrk"):
        if os.geteuid() != 0:
            raise SystemExit("wrk is missing: apt-get install -y wrk (or --generator locust)")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return _wrk if choice == "wrk" else _locust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--duration", type=int, default=120, help="seconds per workload")
    parser.add_argument("--soak", type=int, default=600, help="seconds of mixed load while memory is sampled")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="default: multiplan serve's")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="default: multiplan serve's")
    parser.add_argument("--pg-url")
    parser.add_argument("--server-log", type=Path, help="write gunicorn's access and error log here")
    parser.add_argument("--workloads", default="sites,tiles_cached,tiles_uncached",
                        help="comma-separated, of sites, tiles_cached, tiles_uncached")
    parser.add_argument("--generator", choices=("wrk", "locust"), default="wrk",
                        help="load generator: wrk (C, light on the shared cores; installed with apt when "
                             "missing) or locust")
    args = parser.parse_args()
    run_load = _load_generator(args.generator)
    folder = generate(args.scale)
    work = Path(tempfile.mkdtemp(prefix="multiplan-bench-web."))
    with postgis(args.pg_url) as pg_url:
        print(f"loaded the province in {_load(pg_url, folder):.0f} s (0: already there)", flush=True)
        token, sites_file, version = _prepare(pg_url, 500, work)
        port = _port()
        host = f"http://127.0.0.1:{port}"
        log = args.server_log.open("wb") if args.server_log else subprocess.DEVNULL
        server = subprocess.Popen([str(BIN / "multiplan"), "--store", pg_url, "serve", "--port", str(port),
                                   "--workers", str(args.workers), "--threads", str(args.threads)],
                                  env={**os.environ, "MULTIPLAN_DEM": str(folder / "dem.tif")},
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait(host)
            env = {"MULTIPLAN_BENCH_TOKEN": token, "MULTIPLAN_BENCH_SITES": str(sites_file),
                   "MULTIPLAN_BENCH_VERSION": str(version)}
            run_load(host, "mixed", 30, args.users, env, work)  # warm-up: caches, connections, imports
            results = {}
            for mode in args.workloads.split(","):
                results.update(run_load(host, mode, args.duration, args.users, env, work))
                print(mode, "done", flush=True)
            samples: list[tuple[float, float]] = []
            stop = threading.Event()

            def sample() -> None:
                start = time.monotonic()
                while not stop.is_set():
                    samples.append((time.monotonic() - start, _tree_rss_mb(server.pid)))
                    stop.wait(5)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            soak = run_load(host, "mixed", args.soak, args.users, env, work) if args.soak else {}
            stop.set()
            sampler.join()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            if args.server_log:
                log.close()
    print()
    print(f"{args.users} concurrent clients ({args.generator}), {args.duration} s per workload, gunicorn "
          f"{args.workers} workers x {args.threads} threads, PostGIS, scale {args.scale:g}")
    print(f"{'endpoint':<28} {'requests':>9} {'failures':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, r in results.items():
        print(f"{name:<28} {r['requests']:>9} {r['failures']:>9} {r['rps']:>8.1f} {r['p50']:>8.0f} {r['p95']:>8.0f}")
    if samples and args.soak:
        first = [m for t, m in samples if t <= 60] or [samples[0][1]]
        last = [m for t, m in samples if t >= samples[-1][0] - 60] or [samples[-1][1]]
        failures = sum(r["failures"] for r in soak.values())
        print(f"soak {args.soak} s mixed: {sum(r['requests'] for r in soak.values())} requests, {failures} failures; "
              f"server memory {statistics.median(first):.0f} MB in the first minute, "
              f"{statistics.median(last):.0f} MB in the last, peak {max(m for _, m in samples):.0f} MB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
