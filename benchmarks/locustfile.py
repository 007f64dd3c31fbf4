"""Load for bench_web.py: an approval system posting site checks, and GIS clients asking for tiles.

Settings come from the environment (set by bench_web.py): MULTIPLAN_BENCH_TOKEN (Bearer token),
MULTIPLAN_BENCH_SITES (a JSON file of [project_code, GeoJSON geometry] pairs), MULTIPLAN_BENCH_VERSION
(the master plan's version), MULTIPLAN_BENCH_MODE ("sites", "tiles_cached", "tiles_uncached" or "mixed").
"""

from __future__ import annotations

import json
import math
import os
import random

from locust import FastHttpUser, constant, task

TOKEN = os.environ.get("MULTIPLAN_BENCH_TOKEN", "")
MODE = os.environ.get("MULTIPLAN_BENCH_MODE", "mixed")
VERSION = os.environ.get("MULTIPLAN_BENCH_VERSION", "1")
SITES = []
if os.environ.get("MULTIPLAN_BENCH_SITES"):
    with open(os.environ["MULTIPLAN_BENCH_SITES"], encoding="utf-8") as fh:
        SITES = json.load(fh)
ISLAND = (108.70, 18.30, 110.95, 20.05)
# a fixed set of tiles every client asks for again and again: after the first round they are cached
HOT_TILES = [(14, x, y) for x in range(13_270, 13_276) for y in range(7_230, 7_236)]


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


class Client(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.rng = random.Random()

    @task
    def work(self) -> None:
        mode = MODE if MODE != "mixed" else self.rng.choice(("sites", "tiles_cached", "tiles_uncached"))
        if mode == "sites":
            code, site = self.rng.choice(SITES)
            self.client.post("/api/v1/site-checks", json={"project_code": code, "site": site},
                             headers=self.headers, name="POST /api/v1/site-checks")
        elif mode == "tiles_cached":
            z, x, y = self.rng.choice(HOT_TILES)
            self.client.get(f"/tiles/overall/{VERSION}/{z}/{x}/{y}.pbf", headers=self.headers, name="tile (cached)")
        else:
            z = self.rng.choice((13, 14, 15))
            x, y = tile_of(self.rng.uniform(ISLAND[0], ISLAND[2]), self.rng.uniform(ISLAND[1], ISLAND[3]), z)
            self.client.get(f"/tiles/overall/{VERSION}/{z}/{x}/{y}.pbf", headers=self.headers,
                            name="tile (uncached)")
