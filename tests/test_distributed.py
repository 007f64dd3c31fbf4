"""The Dask engine: the same patches as the local engine, rule kind by rule kind, and `detect --engine dask`."""

from __future__ import annotations

import csv
import json
import socket
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from click.testing import CliRunner
from rasterio.transform import Affine

from multiplan import distributed
from multiplan.cli import cli, detect, plans  # noqa: F401  (importing registers the commands)
from multiplan.cli.demo import SAMPLE_DIR
from multiplan.conflicts import Detection
from multiplan.conflicts import detect as detect_local
from multiplan.crs import ellipsoidal_area
from multiplan.detection import canonical
from multiplan.distributed import detect_distributed
from multiplan.io import Raster, read_raster
from multiplan.rules import ClassFilter, load_rules
from multiplan.rules.spec import RuleSide

X0, Y0 = 110.20, 19.50  # south-west corner of the built county


@pytest.fixture(scope="session")
def client():
    """A local cluster of two worker processes (one thread each), started once."""
    with distributed.dask_client() as c:
        yield c


@pytest.fixture(scope="module")
def county(demo_store):
    versions = {v.layer: v.version for v in demo_store.versions()}
    return {layer: demo_store.read_features(layer, v) for layer, v in versions.items()}, versions


def _same(local: Detection, spread: Detection) -> int:
    """Assert both engines found the same patches (pair by pair), slivers and unknowns; return the patches."""
    a, b = canonical(local), canonical(spread)
    assert list(a.patches.columns) == list(b.patches.columns)
    floats = [c for c in a.patches.columns if c != "geometry" and a.patches[c].dtype.kind == "f"]
    others = [c for c in a.patches.columns if c not in floats and c != "geometry"]
    assert a.patches[others].to_dict("records") == b.patches[others].to_dict("records")
    for column in floats:
        np.testing.assert_allclose(b.patches[column].to_numpy(), a.patches[column].to_numpy(), rtol=1e-9)
    if len(a.patches):  # the same pieces, not only the same areas
        moved = ellipsoidal_area(shapely.symmetric_difference(a.patches.geometry.values, b.patches.geometry.values))
        assert (moved <= 1e-9 * a.patches.area_m2.to_numpy() + 1e-9).all()
    assert b.suppressed_count == a.suppressed_count
    assert b.suppressed_area_m2 == pytest.approx(a.suppressed_area_m2, rel=1e-9, abs=1e-12)
    assert b.unknown == a.unknown
    assert b.area_m2 == pytest.approx(a.area_m2, rel=1e-9)
    return len(a.patches)


def _run(rule, frames, versions, client, rasters=None, npartitions=6):
    """Both engines on the same input; the dask one in ``npartitions`` partitions, all of which report."""
    reports = []
    spread = detect_distributed(rule, frames, versions, rasters, client, npartitions=npartitions,
                                progress=lambda done, total: reports.append((done, total)))
    return detect_local(rule, frames, versions, rasters), spread, reports


# -- the sample county: every rule ------------------------------------------------------------------
SAMPLE_RULES = sorted(rid for rid, rule in load_rules().items() if rule.kind != "coverage")


@pytest.mark.parametrize("rule_id", SAMPLE_RULES)
def test_every_rule_on_the_sample_county_gives_the_local_engines_patches(county, client, rule_id):
    frames, versions = county
    rule = load_rules()[rule_id]
    local, spread, reports = _run(rule, frames, versions, client, {"dem": read_raster(SAMPLE_DIR / "dem.tif")},
                                  npartitions=5)
    assert _same(local, spread) >= 2  # every rule finds planted conflicts in the sample county
    assert reports[-1] == (5, 5) and len(reports) == 5


def test_the_kinds_on_the_sample_county_are_all_exercised():
    kinds = {load_rules()[rid].kind for rid in SAMPLE_RULES}
    assert kinds == set(distributed.KINDS)


# -- built cases: features straddling partitions, B features over several partitions --------------
def _plan(geoms, unified, zone=None, prefix="K", orig=None):
    n = len(geoms)
    return gpd.GeoDataFrame({"feature_key": [f"{prefix}{i}" for i in range(n)],
                             "ydyh_code": unified if isinstance(unified, list) else [unified] * n,
                             "orig_code": orig or (unified if isinstance(unified, list) else [unified] * n),
                             "zone_code": zone if isinstance(zone, list) else [zone] * n, "xzqdm": "469099",
                             "source_attributes": [{} for _ in range(n)]},
                            geometry=list(shapely.segmentize(np.array(geoms, dtype=object), 0.001)), crs=4490)


def _parcels(n=8, size=0.004, step=0.006):
    """An n x n field of square parcels, then long strips across the whole field (each in one partition,
    across the areas of many) and one parcel overlapping a farmland field by 1 cm (a sliver)."""
    squares = [shapely.box(X0 + i * step, Y0 + j * step, X0 + i * step + size, Y0 + j * step + size)
               for j in range(n) for i in range(n)]
    strips = [shapely.box(X0 - 0.002, Y0 + k * 0.011 + 0.0045, X0 + n * step + 0.002, Y0 + k * 0.011 + 0.0052)
              for k in range(4)]
    return squares + strips + [shapely.box(X0 + 0.0199999, Y0 + 0.06, X0 + 0.03, Y0 + 0.07)]


def _farmland():
    """Three wide bands over the field (each meets many partitions), small fields, and two fields that
    overlap each other."""
    bands = [shapely.box(X0 + 0.001, Y0 + k * 0.016, X0 + 0.047, Y0 + k * 0.016 + 0.007) for k in range(3)]
    small = [shapely.box(X0 + 0.0025 + i * 0.012, Y0 + 0.0085, X0 + 0.0045 + i * 0.012, Y0 + 0.0145) for i in range(4)]
    pair = [shapely.box(X0 + 0.013, Y0 + 0.040, X0 + 0.025, Y0 + 0.046), shapely.box(X0 + 0.016, Y0 + 0.041,
                                                                                      X0 + 0.028, Y0 + 0.047)]
    return bands + small + pair + [shapely.box(X0 + 0.0, Y0 + 0.06, X0 + 0.02, Y0 + 0.07)]


def test_overlap_with_straddling_features_and_farmland_over_several_partitions(client):
    frames = {"overall": _plan(_parcels(), "0701"), "farmland": _plan(_farmland(), "0101", prefix="F")}
    local, spread, reports = _run(load_rules()["farmland"], frames, {"overall": 2, "farmland": 1}, client)
    assert _same(local, spread) > 40
    assert reports[-1] == (6, 6)
    # a wide band is found with parcels from one end of the field to the other, so from several partitions
    band = spread.patches[spread.patches.feature_b == "F0"]
    assert band.geometry.bounds.minx.min() < X0 + 0.005 and band.geometry.bounds.maxx.max() > X0 + 0.040
    assert spread.suppressed_count >= 1  # the 1 cm sliver


def test_containment_needs_every_boundary_piece_around_a_feature(client):
    # urban parcels against a development boundary made of pieces, some meeting several partitions; a
    # parcel lying across two pieces is inside their union and is not reported
    boundary = [shapely.box(X0, Y0, X0 + 0.030, Y0 + 0.050), shapely.box(X0 + 0.030, Y0, X0 + 0.051, Y0 + 0.030),
                shapely.box(X0 + 0.030, Y0 + 0.030, X0 + 0.040, Y0 + 0.050)]
    frames = {"urban": _plan(_parcels(), "07", prefix="U"), "overall": _plan(boundary, "0701", zone="041", prefix="B")}
    local, spread, _ = _run(load_rules()["urban_boundary"], frames, {"urban": 3, "overall": 1}, client)
    assert _same(local, spread) == 5
    # outside: the three parcels of the top right corner, the top strip's end (19 %) and the parcel north of
    # the field; the other strips stick out by 4 % only, within the area ratio
    assert set(spread.patches.feature_a) == {"U47", "U55", "U63", "U67", "U68"} and spread.suppressed_count == 3
    across = frames["urban"].feature_key[frames["urban"].geometry.intersects(boundary[0])
                                         & frames["urban"].geometry.intersects(boundary[1])
                                         & frames["urban"].geometry.within(shapely.union_all(boundary))]
    assert len(across) and not set(across) & set(spread.patches.feature_a)
    assert spread.patches.layer_b.isna().all()


def test_corridors_across_the_gauss_kruger_zone_boundary(client):
    # lines on both sides of 109.5° E: each corridor is buffered in the zone holding most of all the lines,
    # so every partition of the red line must see every line
    lines = [shapely.LineString([(109.30 + 0.03 * k, 19.50), (109.34 + 0.03 * k, 19.70)]) for k in range(12)]
    lines += [shapely.LineString([(109.28, 19.52 + 0.04 * k), (109.72, 19.53 + 0.04 * k)]) for k in range(4)]
    roads = _plan(lines, "1202", prefix="R", orig=["高速公路"] * len(lines)).assign(
        corridor_m=60.0, source_attributes=[{"PZWH": "琼发改〔2024〕12号"} if i == 3 else {} for i in range(len(lines))])
    red = [shapely.box(109.30 + 0.025 * i, 19.50 + 0.025 * j, 109.31 + 0.025 * i, 19.51 + 0.025 * j)
           for i in range(17) for j in range(8)] + [shapely.box(109.29, 19.60, 109.71, 19.605)]
    frames = {"road": roads, "eco_redline": _plan(red, "0301", zone="1", prefix="E")}
    local, spread, _ = _run(load_rules()["network_red_line"], frames, {"road": 1, "eco_redline": 4}, client,
                            npartitions=7)
    assert _same(local, spread) > 30
    assert (spread.patches.status == "accepted_exception").any()
    assert spread.patches.crossings.sum() > 0


def test_slope_on_a_lon_lat_dem_with_parcels_on_and_off_it(client):
    # a ridge across a lon/lat DEM with a corner of no data; parcels across the ridge, and one off the DEM
    cell = 0.0003
    rows, cols = 260, 200
    lat = Y0 + 0.07 - cell * (np.arange(rows) + 0.5)
    height = 900 * np.exp(-(((lat - (Y0 + 0.03)) / 0.006) ** 2))[:, None] + np.zeros((rows, cols))
    height[:5, :5] = np.nan
    dem = Raster(height, Affine(cell, 0, X0 - 0.005, 0, -cell, Y0 + 0.07), pyproj.CRS.from_epsg(4490))
    parcels = _parcels() + [shapely.box(X0 + 0.2, Y0, X0 + 0.21, Y0 + 0.01)]
    frames = {"overall": _plan(parcels, "0701")}
    local, spread, _ = _run(load_rules()["slope"], frames, {"overall": 1}, client, {"dem": dem})
    assert _same(local, spread) > 5


def test_a_layer_on_both_sides_is_never_paired_twice(client):
    # one plan against itself: construction land overlapping the plan's own urban land (07); a parcel of
    # class 0701 is on both sides, and partitions must not take the other side's features for their own
    rule = replace(load_rules()["farmland"], id="self_overlap",
                   a=RuleSide(("overall",), ClassFilter(groups=("construction",))),
                   b=RuleSide(("overall",), ClassFilter(unified=("07",))))
    codes = ["0701" if i % 3 else "1001" for i in range(len(_parcels()))]
    frames = {"overall": _plan(_parcels() + _farmland(), codes + ["0701"] * len(_farmland()))}
    local, spread, _ = _run(rule, frames, {"overall": 5}, client)
    assert _same(local, spread) > 40
    assert set(spread.patches.layer_b) == {"overall"} and set(spread.patches.version_b) == {5}


def test_no_dem_is_one_unknown_not_one_per_partition(client):
    frames = {"overall": _plan(_parcels(), "0701")}
    local, spread, _ = _run(load_rules()["slope"], frames, {"overall": 1}, client, {})
    _same(local, spread)
    assert len(spread.unknown) == 1 and spread.unknown[0]["reason"] == "no dem raster"


def test_nothing_on_the_split_side_and_more_partitions_than_features(client):
    frames = {"overall": _plan(_parcels()[:3], "0101"), "farmland": _plan(_farmland(), "0101", prefix="F")}
    local, spread, _ = _run(load_rules()["farmland"], frames, {"overall": 1, "farmland": 1}, client)
    assert _same(local, spread) == 0
    frames["overall"] = _plan(_parcels()[:3], "0701")
    local, spread, reports = _run(load_rules()["farmland"], frames, {"overall": 1, "farmland": 1}, client, npartitions=50)
    assert _same(local, spread) == 3 and reports[-1] == (3, 3)


def test_a_coverage_rule_is_refused_as_the_local_engine_refuses_it(client):
    with pytest.raises(ValueError, match="quality check"):
        detect_distributed(load_rules()["in_plan"], {}, {}, None, client)


# -- the command ----------------------------------------------------------------------------------
LOADED = ("overall", "urban", "farmland", "eco_redline", "road")
RULES = ("farmland", "urban_boundary", "network_red_line", "slope", "in_plan")


def _csv(path):
    with open(path, encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def test_detect_command_on_dask_records_the_cases_the_local_engine_found(store_url, tmp_path):
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(cli, ["--store", store_url, *map(str, args)])
        assert result.exit_code == 0, result.output
        return result.output
    for layer in LOADED:
        suffix = "geojson" if layer == "eco_redline" else "zip"
        run("load", layer, SAMPLE_DIR / "plans" / f"{layer}.{suffix}")
    rules = [x for rid in RULES for x in ("--rule", rid)]
    dem = ("--dem", SAMPLE_DIR / "dem.tif")
    local = json.loads(run("--lang", "en", "detect", *rules, *dem, "--json", "--out", tmp_path / "local.csv"))
    spread = json.loads(run("--lang", "en", "detect", "--engine", "dask", *rules, *dem, "--json",
                            "--out", tmp_path / "dask.csv"))
    # the second run finds every case of the first again, and no other
    assert spread["ledger"]["new"] == [] and spread["ledger"]["resolved"] == []
    assert len(spread["ledger"]["unchanged"]) == len(local["ledger"]["new"]) > 10
    keys = ("rule", "patches", "area_m2", "suppressed", "unknown", "missing_layers")
    assert [{k: r[k] for k in keys} for r in spread["rules"]] == [{k: r[k] for k in keys} for r in local["rules"]]
    assert [r["missing_layers"] for r in spread["rules"] if r["rule"] == "slope"] == [["land_use"]]
    rows, expected = _csv(tmp_path / "dask.csv"), _csv(tmp_path / "local.csv")
    assert len(rows) == len(expected) > 10
    for got, want in zip(rows, expected, strict=True):  # the same order, row for row
        assert {k: v for k, v in got.items() if not k.startswith("area_")} == \
            {k: v for k, v in want.items() if not k.startswith("area_")}
        assert float(got["area_m2"]) == pytest.approx(float(want["area_m2"]), rel=1e-9)
    table = run("detect", "--engine", "dask", "--rule", "farmland", "--no-save")
    assert "farmland" in table and "禁止" in table


def test_detect_command_uses_a_running_scheduler(demo_store, client):
    runner = CliRunner()
    args = ["--store", demo_store.url, "--lang", "en", "detect", "--rule", "urban_boundary", "--rule", "farmland",
            "--json", "--no-save"]
    local = runner.invoke(cli, args)
    remote = runner.invoke(cli, [*args, "--engine", "dask", "--scheduler", client.scheduler.address])
    assert remote.exit_code == 0, remote.output

    def rules(output):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(output)["rules"]]
    assert rules(remote.output) == rules(local.output)
    assert [r["patches"] for r in json.loads(remote.output)["rules"]] == [5, 8]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["closed", "127.0.0.1", "foo://x:1"])
def test_a_scheduler_out_of_reach_is_one_clear_line(demo_store, monkeypatch, address):
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{_closed_port()}" if address == "closed" else address
    runner = CliRunner()
    for lang, words in (("zh", "错误: 无法连接 Dask 调度器"), ("en", "Error: Cannot reach the Dask scheduler")):
        result = runner.invoke(cli, ["--store", demo_store.url, "--lang", lang, "detect", "--engine", "dask",
                                     "--scheduler", address, "--no-save"])
        assert result.exit_code == 1
        assert result.output.startswith(f"{words} {address}")
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_scheduler_without_the_dask_engine_is_a_usage_error(demo_store):
    result = CliRunner().invoke(cli, ["--store", demo_store.url, "detect", "--scheduler", "tcp://127.0.0.1:8786"])
    assert result.exit_code == 2 and "--engine dask" in result.output
