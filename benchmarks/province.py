"""Province-scale generated plans for the benchmarks: all twelve layers over Hainan island and its sea.

At ``scale=1`` the master plan and the land-use plan are coverages of 250,000 polygons each, the
urban plan 50,000, basic farmland 100,000, forest 150,000, the red line 20,000, marine zoning 5,000,
and the five networks 22,000 lines of about 7 km (road 8,000, fibre, power and water 4,000 each, gas 2,000:
some 150,000 km in all, the order of the island's planned networks); polygons carry about 12 vertices. Fields and codes are
the ones the layer specs read, so the data go through the same load as real plans. Files are written
once per scale and seed, as GeoPackages, under benchmarks/data/ (not in git).

    python benchmarks/province.py --scale 1      # writes the files and prints where
"""

from __future__ import annotations

import argparse
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import shapely
from affine import Affine

DATA_DIR = Path(__file__).resolve().parent / "data"
ISLAND = (108.70, 18.30, 110.95, 20.05)
URBAN = (110.10, 19.80, 110.60, 20.05)  # greater Haikou
SEA = (110.95, 18.30, 111.60, 20.05)
# the province's county-level divisions, assigned by a 6 x 3 grid over the island
COUNTIES = ("460105", "460106", "460107", "460108", "460202", "460203", "460204", "460205", "460321",
            "469001", "469002", "469005", "469006", "469007", "469021", "469022", "469023", "469024")
COUNTS = {"overall": 250_000, "land_use": 250_000, "urban": 50_000, "farmland": 100_000, "forest": 150_000,
          "eco_redline": 20_000, "ocean": 5_000, "road": 8_000, "fiber": 4_000, "power": 4_000, "gas": 2_000,
          "water": 4_000}
DEM_CELL = 0.0009  # about 90 m


def _county(points: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = ISLAND
    col = np.clip(((points[:, 0] - x0) / (x1 - x0) * 6).astype(int), 0, 5)
    row = np.clip(((points[:, 1] - y0) / (y1 - y0) * 3).astype(int), 0, 2)
    return np.array(COUNTIES)[row * 6 + col]


def _cells(n: int, bounds: tuple[float, float, float, float], rng: np.random.Generator,
           vertices: int = 12) -> np.ndarray:
    """A coverage of ``n`` Voronoi cells over ``bounds``, edges densified to about ``vertices`` corners."""
    x0, y0, x1, y1 = bounds
    pts = rng.uniform([x0, y0], [x1, y1], (n, 2))
    frame = shapely.box(x0, y0, x1, y1)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame))
    cells = shapely.intersection(cells, frame)
    spacing = np.sqrt((x1 - x0) * (y1 - y0) / n) / (vertices / 6 * 1.2)
    return shapely.orient_polygons(shapely.segmentize(cells, spacing))


def _lines(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random walks of 10-40 steps of about 300 m over the island."""
    x0, y0, x1, y1 = ISLAND
    out = np.empty(n, dtype=object)
    starts = rng.uniform([x0 + 0.05, y0 + 0.05], [x1 - 0.05, y1 - 0.05], (n, 2))
    for i, start in enumerate(starts):
        steps = rng.integers(10, 41)
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, steps))
        walk = start + np.cumsum(np.column_stack([np.cos(heading), np.sin(heading)]) * 0.0028, axis=0)
        out[i] = shapely.LineString(np.vstack([start, np.clip(walk, [x0, y0], [x1, y1])]))
    return out


def _frame(fields: dict, geoms: np.ndarray) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(fields, geometry=gpd.GeoSeries(geoms, crs=4490))


def generate(scale: float = 1.0, seed: int = 7) -> Path:
    """Write the province's twelve plans and a DEM under benchmarks/data/; return the folder."""
    folder = DATA_DIR / f"province-v2-s{scale:g}-{seed}"
    done = folder / "DONE"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = {k: max(int(v * scale), 50) for k, v in COUNTS.items()}

    def pick(values, count):
        return np.array(values)[rng.integers(0, len(values), count)]

    overall = _cells(n["overall"], ISLAND, rng)
    centres = shapely.get_coordinates(shapely.centroid(overall))
    ydyh = ["0101", "0102", "0103", "0201", "0301", "0302", "0401", "0701", "0702", "0801", "0901", "1001",
            "1101", "1201", "1207", "1301", "1401", "1701", "1702"]
    zones = ["01", "02", "03", "041", "042", "05", "07"]
    frames = {
        "overall": _frame({"BSM": [f"OV{i:09d}" for i in range(len(overall))], "XZQDM": _county(centres),
                           "YDYHFLDM": pick(ydyh, len(overall)), "GHFQDM": pick(zones, len(overall))}, overall)}
    land_use = _cells(n["land_use"], ISLAND, rng)
    frames["land_use"] = _frame({
        "BSM": [f"LU{i:09d}" for i in range(len(land_use))],
        "XZQDM": _county(shapely.get_coordinates(shapely.centroid(land_use))),
        "YTQLXDM": pick(["010", "020", "030", "040", "050", "060", "070", "080", "090", "100"], len(land_use)),
        "GZQLXDM": pick(["010", "020", "030", "040"], len(land_use))}, land_use)
    urban = _cells(n["urban"], URBAN, rng)
    frames["urban"] = _frame({"BSM": [f"UR{i:09d}" for i in range(len(urban))], "XZQDM": "460105",
                              "YDDM": pick(["R1", "R2", "A1", "B1", "M1", "S1", "G1", "E1"], len(urban))}, urban)
    for layer, tessellation, prefix, fields in (
            ("farmland", 2, "JB", {"DLBM": ["0101", "0102", "0103"]}),
            ("forest", 2, "XB", {"DI_LEI": ["0111", "0114", "0131", "0132"], "BH_DJ": ["1", "2", "3", "4"]}),
            ("eco_redline", 3, "HX", {"DLBM": ["0301", "0401", "1101"], "GKLB": ["1", "2"]})):
        cells = _cells(n[layer] * tessellation, ISLAND, rng)
        cells = cells[rng.permutation(len(cells))[: n[layer]]]  # a subset: patches with gaps between them
        id_field = {"farmland": "JBNTTBBH", "forest": "XBH", "eco_redline": "HXBH"}[layer]
        frames[layer] = _frame({id_field: [f"{prefix}{i:09d}" for i in range(len(cells))],
                                "XZQDM": _county(shapely.get_coordinates(shapely.centroid(cells))),
                                **{k: pick(v, len(cells)) for k, v in fields.items()}}, cells)
    ocean = _cells(n["ocean"], SEA, rng)
    frames["ocean"] = _frame({"GNQDM": [f"HY{i:06d}" for i in range(len(ocean))], "XZQDM": "460100",
                              "GNQLX": pick(["1", "2", "3", "5", "6", "8"], len(ocean))}, ocean)
    levels = {"road": ("DJ", ["高速公路", "一级公路", "二级公路", "三级公路"]), "fiber": ("DJ", ["骨干", "城域", "接入"]),
              "power": ("DYDJ", ["500kV", "220kV", "110kV"]), "gas": ("YLDJ", ["高压", "次高压", "中压"]),
              "water": ("DJ", ["原水干渠", "输水干管", "配水管"])}
    for layer, (field, values) in levels.items():
        lines = _lines(n[layer], rng)
        frames[layer] = _frame({"BSM": [f"{layer[:2].upper()}{i:08d}" for i in range(len(lines))],
                                "XZQDM": _county(shapely.get_coordinates(shapely.centroid(lines))),
                                field: pick(values, len(lines))}, lines)
    for layer, frame in frames.items():
        pyogrio.write_dataframe(frame, folder / f"{layer}.gpkg", layer=layer, driver="GPKG")
    _dem(folder / "dem.tif", rng)
    done.write_text("ok\n")
    return folder


def _dem(path: Path, rng: np.random.Generator) -> None:
    """Smooth hills rising to the island's centre, with noise; EPSG:4490, about 90 m cells."""
    x0, y0, x1, y1 = ISLAND
    cols, rows = int((x1 - x0) / DEM_CELL), int((y1 - y0) / DEM_CELL)
    lon = x0 + DEM_CELL * (np.arange(cols) + 0.5)
    lat = y1 - DEM_CELL * (np.arange(rows) + 0.5)
    gx, gy = np.meshgrid(lon, lat)
    height = 1500 * np.exp(-(((gx - 109.8) / 0.5) ** 2 + ((gy - 18.9) / 0.4) ** 2))
    height += 80 * np.sin(gx * 90) * np.cos(gy * 70) + rng.normal(0, 2, gx.shape)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
                       crs="EPSG:4490", transform=Affine(DEM_CELL, 0, x0, 0, -DEM_CELL, y1), nodata=-9999,
                       tiled=True, compress="deflate") as dst:
        dst.write(np.maximum(height, 0).astype("float32"), 1)


def sites(count: int, seed: int = 11) -> list[shapely.Polygon]:
    """Typical project sites: star-shaped polygons of 0.5 ha to 1 km² with 4 to 500 vertices, on the island."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = ISLAND
    out = []
    for _ in range(count):
        area_km2 = float(np.exp(rng.uniform(np.log(0.005), np.log(1.0))))
        vertices = int(rng.choice([4, 8, 16, 40, 100, 250, 500], p=[.2, .2, .2, .15, .1, .1, .05]))
        radius_m = np.sqrt(area_km2 * 1e6 / np.pi)
        step = 2 * np.pi / vertices  # jittered but ordered angles: a simple, star-shaped ring
        angles = np.arange(vertices) * step + rng.uniform(0, 0.8 * step, vertices)
        radii = radius_m * rng.uniform(0.75, 1.0, vertices)
        cx, cy = rng.uniform([x0 + 0.1, y0 + 0.1], [x1 - 0.1, y1 - 0.1])
        dx = radii * np.cos(angles) / (111_320 * np.cos(np.radians(cy)))
        dy = radii * np.sin(angles) / 110_574
        out.append(shapely.Polygon(np.column_stack([cx + dx, cy + dy])))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(generate(args.scale, args.seed))
