"""Site checks on both stores: areas and shares against independent geodesic computations, control lines,
network distances, findings, verdicts, as-of versions and byte-identical reports."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import geopandas as gpd
import jsonschema
import numpy as np
import psycopg
import pyogrio
import pyproj
import pytest
import rasterio
import shapely
from affine import Affine

from multiplan.ingest import load_plan
from multiplan.sitecheck import (
    SCHEMA_VERSION,
    canonical_json,
    check_site,
    content_hash,
    report_schema,
)
from multiplan.store import open_store

GEOD = pyproj.Geod(ellps="GRS80")
DENSE = 0.0005  # degrees: polygon edges densified so that every area method agrees to 1e-9


def box(x0, y0, x1, y1):
    return shapely.segmentize(shapely.box(x0, y0, x1, y1), DENSE)


def geod_area(geom) -> float:
    """Karney's geodesic area via pyproj: independent of multiplan's authalic-sphere areas."""
    return float(sum(abs(GEOD.polygon_area_perimeter(*p.exterior.xy)[0])
                     - sum(abs(GEOD.polygon_area_perimeter(*r.xy)[0]) for r in p.interiors)
                     for p in shapely.get_parts(geom) if not p.is_empty))


WEST = box(110.20, 19.50, 110.25, 19.60)       # planned construction land, 城镇集中建设区
EAST = box(110.25, 19.50, 110.30, 19.60)       # cropland, 农田保护区
FARMLAND = box(110.26, 19.52, 110.28, 19.54)
RED_LINE_1 = box(110.21, 19.52, 110.22, 19.53)
FOREST_3 = box(110.28, 19.58, 110.29, 19.59)
OCEAN = box(110.29, 19.50, 110.30, 19.51)
ROAD = shapely.LineString([(110.20, 19.545), (110.30, 19.545)])
STEEP = (110.232, 110.236)                      # DEM columns of a 45° ramp


def _plan_files(folder):
    frames = {
        "overall": gpd.GeoDataFrame({"BSM": ["W", "E"], "XZQDM": "469099", "YDYHFLDM": ["0701", "0101"],
                                     "GHFQDM": ["041", "03"]}, geometry=[WEST, EAST], crs=4490),
        "land_use": gpd.GeoDataFrame({"BSM": ["L"], "XZQDM": "469099", "YTQLXDM": ["030"], "GZQLXDM": ["010"]},
                                     geometry=[box(110.20, 19.50, 110.30, 19.60)], crs=4490),
        "farmland": gpd.GeoDataFrame({"JBNTTBBH": ["F1"], "XZQDM": "469099", "DLBM": ["0101"]},
                                     geometry=[FARMLAND], crs=4490),
        "eco_redline": gpd.GeoDataFrame({"HXBH": ["R1"], "XZQDM": "469099", "DLBM": ["0301"], "GKLB": ["1"]},
                                        geometry=[RED_LINE_1], crs=4490),
        "forest": gpd.GeoDataFrame({"XBH": ["X1"], "XZQDM": "469099", "DI_LEI": ["0111"], "BH_DJ": ["3"]},
                                   geometry=[FOREST_3], crs=4490),
        "ocean": gpd.GeoDataFrame({"GNQDM": ["O1"], "XZQDM": "469099", "GNQLX": ["6"]}, geometry=[OCEAN], crs=4490),
        "road": gpd.GeoDataFrame({"BSM": ["RD1"], "XZQDM": "469099", "DJ": ["一级公路"]}, geometry=[ROAD], crs=4490),
    }
    paths = {}
    for layer, frame in frames.items():
        paths[layer] = folder / f"{layer}.gpkg"
        pyogrio.write_dataframe(frame, paths[layer], layer=layer, driver="GPKG")
    return paths


def _dem(folder):
    """Flat at 10 m, with a 45-degree ramp between the STEEP longitudes; EPSG:4490, 0.0001° cells."""
    cell = 0.0001
    cols, rows = 1000, 1000
    lon = 110.20 + cell * (np.arange(cols) + 0.5)
    metres_per_cell = cell * 111_320.0 * np.cos(np.radians(19.55))
    ramp = np.clip((lon - STEEP[0]) / cell, 0, (STEEP[1] - STEEP[0]) / cell) * metres_per_cell
    values = np.tile(10.0 + ramp, (rows, 1)).astype("float32")
    path = folder / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32", crs="EPSG:4490",
                       transform=Affine(cell, 0, 110.20, 0, -cell, 19.60), nodata=-9999) as dst:
        dst.write(values, 1)
    return path


@pytest.fixture(scope="module", params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def plans_store(request, tmp_path_factory):
    """A store of each kind holding the small built county, and its DEM."""
    folder = tmp_path_factory.mktemp("sitecheck")
    schema = None
    if request.param == "gpkg":
        url = str(folder / "store.gpkg")
    else:
        from tests.conftest import _need_postgis

        base = _need_postgis()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema},public"
    with open_store(url) as store:
        store.init()
        for layer, path in _plan_files(folder).items():
            load_plan(store, layer, path)
        yield store, {"dem": _dem(folder)}
    if schema:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_site_on_construction_land_is_compliant_and_its_area_is_geodesic(plans_store):
    store, rasters = plans_store
    site = box(110.22, 19.56, 110.23, 19.57)
    report = check_site(site, store, rasters=rasters)
    assert report["verdict"] == "compliant", report["findings"]
    assert report["site"]["area_m2"] == pytest.approx(geod_area(site), rel=1e-6)
    assert report["site"]["area_mu"] == pytest.approx(report["site"]["area_m2"] * 3 / 2000, rel=1e-6)
    overall = [r for r in report["overlaps"] if r["layer"] == "overall"]
    assert [(r["class_code"], r["zone_code"]) for r in overall] == [("0701", "041")]
    assert overall[0]["site_percent"] == pytest.approx(100.0, abs=1e-4)
    assert overall[0]["patch_percent"] == pytest.approx(100 * geod_area(site) / geod_area(WEST), rel=1e-6)
    assert report["terrain"]["status"] == "checked" and report["terrain"]["slope_max_deg"] < 1
    assert {f["rule"]: f["status"] for f in report["findings"]} == {}
    assert all(r["status"] in ("clear",) for r in report["rules_applied"]), report["rules_applied"]
    assert report["compliance"][0] == {**report["compliance"][0], "layer": "overall",
                                       "compliant_percent": pytest.approx(100.0, abs=1e-4)}


def test_shares_of_a_plan_add_up_to_100_and_match_independent_areas(plans_store):
    store, rasters = plans_store
    site = box(110.245, 19.56, 110.255, 19.57)  # half on construction land, half on cropland
    report = check_site(site, store, rasters=rasters)
    overall = {r["class_code"]: r for r in report["overlaps"] if r["layer"] == "overall"}
    assert set(overall) == {"0701", "0101"}
    assert sum(r["site_percent"] for r in overall.values()) == pytest.approx(100.0, abs=1e-6)
    for code, plan in (("0701", WEST), ("0101", EAST)):
        expected = geod_area(shapely.intersection(site, plan))
        assert overall[code]["area_m2"] == pytest.approx(expected, rel=1e-6)
        assert overall[code]["area_ha"] == pytest.approx(expected / 1e4, rel=1e-6)
        assert overall[code]["site_percent"] == pytest.approx(100 * expected / geod_area(site), rel=1e-6)
    compliance = report["compliance"][0]
    assert compliance["compliant_m2"] == pytest.approx(overall["0701"]["area_m2"], rel=1e-9)
    assert compliance["non_compliant_m2"] == pytest.approx(overall["0101"]["area_m2"], rel=1e-9)
    layers = {entry["layer"]: entry for entry in report["layers"]}
    assert layers["overall"]["covered_percent"] == pytest.approx(100.0, abs=1e-6)
    assert layers["farmland"]["covered_percent"] == 0.0
    assert layers["urban"]["status"] == "missing"


def test_a_site_on_basic_farmland_is_prohibited_with_the_overlap_measured(plans_store):
    store, rasters = plans_store
    site = box(110.275, 19.535, 110.285, 19.545)  # one quarter on the farmland
    report = check_site(site, store, rasters=rasters)
    assert report["verdict"] == "prohibited"
    assert "farmland" in report["verdict_rules"]
    finding = next(f for f in report["findings"] if f["rule"] == "farmland")
    expected = geod_area(shapely.intersection(site, FARMLAND))
    assert finding["area_m2"] == pytest.approx(expected, rel=1e-6)
    assert finding["severity"] == "forbidden" and finding["basis"]["zh"] and finding["message"]["en"]
    assert finding["features"] == ["farmland:F1"]
    line = next(c for c in report["control_lines"] if c["id"] == "farmland")
    assert line["position"] == "both"
    assert line["inside_m2"] == pytest.approx(expected, rel=1e-6)
    red = next(c for c in report["control_lines"] if c["id"] == "red_line_1")
    assert red["position"] == "outside" and red["inside_m2"] == 0


def test_a_site_inside_red_line_class_1_is_inside_the_line_and_prohibited(plans_store):
    store, rasters = plans_store
    site = box(110.212, 19.522, 110.218, 19.528)
    report = check_site(site, store, rasters=rasters)
    red = next(c for c in report["control_lines"] if c["id"] == "red_line_1")
    assert red["position"] == "inside" and red["inside_percent"] == pytest.approx(100.0, abs=1e-4)
    assert report["verdict"] == "prohibited" and report["verdict_rules"] == ["red_line_1"]


def test_a_sliver_below_the_tolerance_is_counted_not_reported(plans_store):
    store, rasters = plans_store
    site = box(110.27993, 19.53993, 110.28993, 19.54993)  # touches the farmland's corner: about 57 m²
    report = check_site(site, store, rasters=rasters)
    assert geod_area(shapely.intersection(site, FARMLAND)) < 200
    assert "farmland" not in {f["rule"] for f in report["findings"]}
    assert report["slivers"]["count"] == 1 and report["slivers"]["rules"] == ["farmland"]
    assert report["slivers"]["area_m2"] == pytest.approx(geod_area(shapely.intersection(site, FARMLAND)), rel=1e-6)
    assert report["verdict"] == "compliant"


def test_network_distance_and_length_inside_match_geodesic_computations(plans_store):
    store, rasters = plans_store
    near = box(110.215, 19.546, 110.216, 19.547)  # 0.001° north of the road
    report = check_site(near, store, rasters=rasters)
    road = next(n for n in report["networks"] if n["layer"] == "road")
    assert road["distance_m"] == pytest.approx(GEOD.inv(110.2155, 19.545, 110.2155, 19.546)[2], rel=1e-6)
    assert road["length_inside_m"] == 0 and road["corridor_m"] == 40 and not road["in_corridor"]
    across = box(110.216, 19.544, 110.218, 19.546)  # the road crosses it
    report = check_site(across, store, rasters=rasters)
    road = next(n for n in report["networks"] if n["layer"] == "road")
    assert road["distance_m"] == 0
    assert road["length_inside_m"] == pytest.approx(GEOD.inv(110.216, 19.545, 110.218, 19.545)[2], rel=1e-6)
    assert road["in_corridor"] and road["corridor_area_m2"] > 0
    far = box(110.215, 19.58, 110.216, 19.581)  # about 3.9 km away: out of reach
    assert [n for n in check_site(far, store, rasters=rasters)["networks"] if n["layer"] == "road"] == []


def test_a_steep_site_breaks_the_slope_rule(plans_store):
    store, rasters = plans_store
    site = box(110.2325, 19.56, 110.2355, 19.565)
    report = check_site(site, store, rasters=rasters)
    assert report["terrain"]["slope_over_25_percent"] > 90
    assert "slope" in {f["rule"] for f in report["findings"]}
    assert report["verdict"] == "conditional"


def test_the_cells_under_a_site_are_the_ones_gdal_burns():
    # the check tests cell centres itself (faster than a call into GDAL for a small window): same cells
    import rasterio.features

    from multiplan.sitecheck import _cells_under

    transform = Affine(0.0001, 0, 110.20, 0, -0.0001, 19.60)
    rng = np.random.default_rng(3)
    for _ in range(20):
        angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
        radii = rng.uniform(0.0004, 0.0016, 40)
        site = shapely.Polygon(np.c_[110.2021 + radii * np.cos(angles), 19.5979 + radii * np.sin(angles)])
        gdal = rasterio.features.geometry_mask([site], (40, 40), transform, invert=True)
        assert gdal.sum() > 10 and np.array_equal(_cells_under(site, (40, 40), transform), gdal)
    tiny = shapely.box(110.20012, 19.59985, 110.20014, 19.59987)  # inside one cell, off its centre
    touched = rasterio.features.geometry_mask([tiny], (40, 40), transform, invert=True, all_touched=True)
    assert touched.sum() == 1 and np.array_equal(_cells_under(tiny, (40, 40), transform), touched)


def test_a_site_smaller_than_a_dem_cell_still_gets_its_terrain(plans_store):
    store, rasters = plans_store
    report = check_site(box(110.22012, 19.56012, 110.22014, 19.56014), store, rasters=rasters)
    assert report["terrain"]["status"] == "checked" and report["terrain"]["cells"] == 1


def test_without_a_dem_the_verdict_is_unknown_never_compliant(plans_store):
    store, _ = plans_store
    report = check_site(box(110.22, 19.56, 110.23, 19.57), store)
    assert report["verdict"] == "unknown"
    assert report["terrain"] == {"status": "unknown", "reason": "no_dem"}
    assert next(f for f in report["findings"] if f["rule"] == "slope")["status"] == "unknown"


def test_as_of_a_date_before_any_load_knows_no_plan_and_says_unknown(plans_store):
    store, rasters = plans_store
    site = box(110.22, 19.56, 110.23, 19.57)
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    before = check_site(site, store, as_of=yesterday, rasters=rasters)
    assert before["plan_versions"] == {} and before["verdict"] == "unknown" and before["overlaps"] == []
    today = check_site(site, store, as_of=date.today().isoformat(), rasters=rasters)
    assert today["plan_versions"] == check_site(site, store, rasters=rasters)["plan_versions"]
    assert today["as_of"] == date.today().isoformat()


def test_the_same_inputs_give_the_same_bytes_and_hash(plans_store):
    store, rasters = plans_store
    site = box(110.245, 19.56, 110.255, 19.57)
    first, second = check_site(site, store, rasters=rasters), check_site(site, store, rasters=rasters)
    assert canonical_json(first) == canonical_json(second)
    assert first["content_sha256"] == second["content_sha256"] == content_hash(first)
    other = check_site(box(110.245, 19.56, 110.255, 19.571), store, rasters=rasters)
    assert other["content_sha256"] != first["content_sha256"]
    # the compact JSON kept from hashing is exactly what json writes for the report as a plain dict
    plain = json.dumps(dict(first), ensure_ascii=False, sort_keys=True, allow_nan=False)
    assert canonical_json(first, indent=None) == plain
    assert json.loads(plain) == json.loads(canonical_json(first))


def test_checks_at_once_on_many_threads_give_the_reports_of_checks_one_by_one(plans_store, monkeypatch):
    # a web worker runs checks on several threads, and a big site's networks run on a second one
    from concurrent.futures import ThreadPoolExecutor

    import multiplan.sitecheck

    monkeypatch.setattr(multiplan.sitecheck, "SIDE_THREAD_VERTICES", 0)
    store, rasters = plans_store
    sites = [box(110.20 + 0.01 * i, 19.53 + 0.003 * j, 110.215 + 0.01 * i, 19.556 + 0.003 * j)
             for i in range(8) for j in range(3)]
    one_by_one = [canonical_json(check_site(s, store, rasters=rasters)) for s in sites]
    assert any('"in_corridor": true' in r for r in one_by_one)  # the network part has work to do
    with ThreadPoolExecutor(4) as pool:
        at_once = list(pool.map(lambda s: canonical_json(check_site(s, store, rasters=rasters)), sites * 3))
    assert at_once == one_by_one * 3


def test_reports_follow_the_documented_schema(plans_store):
    store, rasters = plans_store
    report = check_site(box(110.275, 19.535, 110.285, 19.545), store, rasters=rasters)
    jsonschema.validate(json.loads(canonical_json(report)), report_schema())
    assert report["schema_version"] == SCHEMA_VERSION
    for key in ("area_m2",):
        assert key in report["site"]
    assert {"layer", "class_code", "class_name", "area_m2", "site_percent"} <= set(report["overlaps"][0])
    assert {"rule", "severity", "area_m2", "message"} <= set(report["findings"][0])


def test_a_network_project_is_checked_by_the_corridor_rules(plans_store):
    store, rasters = plans_store
    corridor = box(110.265, 19.525, 110.266, 19.535)  # a pipeline strip across the farmland
    report = check_site(corridor, store, rasters=rasters, project_use="network")
    assert {f["rule"] for f in report["findings"]} == {"network_farmland"}
    assert report["verdict"] == "conditional"


def test_sample_approvals_get_the_verdicts_their_notes_expect(demo_store):
    import csv

    from multiplan.cli.demo import SAMPLE_DIR

    expected = {"符合规划": "compliant", "不予通过": "prohibited", "永久基本农田": "prohibited",
                "有条件建设区": "conditional", "山坡": "conditional", "二类管控区": "conditional"}
    with open(SAMPLE_DIR / "approvals.csv", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        report = check_site(shapely.from_wkt(row["用地范围"]), demo_store, rasters={"dem": SAMPLE_DIR / "dem.tif"})
        want = next(v for k, v in expected.items() if k in row["备注"])
        assert report["verdict"] == want, (row["项目名称"], report["verdict_rules"])
