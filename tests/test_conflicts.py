"""Conflict detection (overlap and containment rules) on the planted conflicts and on built cases."""

from __future__ import annotations

import csv

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

from multiplan.cli.demo import SAMPLE_DIR
from multiplan.conflicts import detect, pick_values
from multiplan.crs import ellipsoidal_area
from multiplan.io import read_raster
from multiplan.rules import load_rules

GEOD = pyproj.CRS.from_epsg(4490).get_geod()


@pytest.fixture(scope="module")
def plans(demo_store):
    versions = {v.layer: v.version for v in demo_store.versions()}
    frames = {layer: demo_store.read_features(layer, v) for layer, v in versions.items()}
    return frames, versions


def _planted(rule_id):
    with open(SAMPLE_DIR / "planted_conflicts.csv", encoding="utf-8-sig") as fh:
        return [row for row in csv.DictReader(fh) if row["conflict_type"] == rule_id]


ALL_RULES = ["two_plan_1", "two_plan_2", "farmland", "farmland_use", "red_line_1", "red_line_2",
                 "boundary_red_line", "boundary_farmland", "forest_1", "forest_2", "forest_3_4",
                 "forest_farmland", "control_zone", "conditional", "land_sea", "network_red_line",
                 "network_farmland", "slope"]


@pytest.mark.parametrize("rule_id", ALL_RULES)
def test_every_planted_conflict_is_found_and_nothing_else(plans, rule_id):
    frames, versions = plans
    found = detect(load_rules()[rule_id], frames, versions, {"dem": read_raster(SAMPLE_DIR / "dem.tif")})
    pairs = {frozenset((p.feature_a, p.feature_b)) for p in found.patches.itertuples()}
    planted = _planted(rule_id)
    assert pairs == {frozenset((row["feature_a"], row["feature_b"])) for row in planted}
    by_pair = {frozenset((p.feature_a, p.feature_b)): p.area_m2 for p in found.patches.itertuples()}
    for row in planted:  # the generator measured planar areas in EPSG:4546, within 0.01 %
        # the DEM's steep cells are polygonised as the generator did, so slope areas agree as well
        assert by_pair[frozenset((row["feature_a"], row["feature_b"]))] == pytest.approx(
            float(row["approx_area_m2"]), rel=2e-3, abs=1.0)
    assert (found.patches.severity == load_rules()[rule_id].severity).all()
    assert set(found.patches.version_a) == {versions[found.patches.layer_a.iloc[0]]}
    assert found.unknown == []


def test_patch_areas_match_pyproj_geodesic_areas(plans):
    frames, versions = plans
    found = detect(load_rules()["control_zone"], frames, versions)
    for patch in found.patches.itertuples():
        karney = sum(abs(GEOD.polygon_area_perimeter(*p.exterior.xy)[0])
                     - sum(abs(GEOD.polygon_area_perimeter(*r.xy)[0]) for r in p.interiors)
                     for p in shapely.get_parts(patch.geometry))
        assert patch.area_m2 == pytest.approx(karney, rel=1e-6)
        assert patch.area_mu == pytest.approx(patch.area_m2 * 3 / 2000, rel=1e-12)


def _frame(geoms, codes, zone=None, layer_keys="K"):
    return gpd.GeoDataFrame({"feature_key": [f"{layer_keys}{i}" for i in range(len(geoms))],
                             "ydyh_code": codes, "orig_code": codes, "zone_code": zone or [None] * len(geoms),
                             "xzqdm": "469099"}, geometry=geoms, crs=4490)


def test_overlapping_features_of_one_plan_are_not_counted_twice():
    site = shapely.segmentize(shapely.box(110.30, 19.60, 110.31, 19.61), 0.0005)
    farm1 = shapely.segmentize(shapely.box(110.305, 19.60, 110.32, 19.61), 0.0005)
    farm2 = shapely.segmentize(shapely.box(110.307, 19.60, 110.32, 19.61), 0.0005)  # overlaps farm1
    frames = {"overall": _frame([site], ["0701"]), "farmland": _frame([farm1, farm2], ["0101", "0101"], layer_keys="F")}
    found = detect(load_rules()["farmland"], frames, {"overall": 1, "farmland": 1})
    assert len(found.patches) == 2
    half = ellipsoidal_area(np.array([shapely.intersection(site, farm1)]))[0]
    assert found.area_m2 == pytest.approx(half, rel=1e-9)
    assert found.patches.area_m2.sum() > found.area_m2


def test_slivers_below_the_tolerance_are_suppressed_and_counted():
    site = shapely.box(110.30, 19.60, 110.31, 19.61)
    sliver_farm = shapely.box(110.3099999, 19.60, 110.32, 19.61)  # ~1 cm wide overlap, ~11 m²
    frames = {"overall": _frame([site], ["0701"]), "farmland": _frame([sliver_farm], ["0101"])}
    found = detect(load_rules()["farmland"], frames, {"overall": 1, "farmland": 1})
    assert found.patches.empty and found.suppressed_count == 1
    assert 0 < found.suppressed_area_m2 < 200


def test_containment_reports_what_lies_outside_the_boundary():
    boundary = shapely.box(110.30, 19.60, 110.31, 19.61)
    inside = shapely.box(110.301, 19.601, 110.305, 19.605)
    straddling = shapely.box(110.308, 19.601, 110.312, 19.605)  # half outside
    frames = {"urban": _frame([inside, straddling], ["R", "M"]).assign(ydyh_code=["07", "1001"]),
              "overall": _frame([boundary], ["0701"], zone=["041"])}
    found = detect(load_rules()["urban_boundary"], frames, {"urban": 1, "overall": 1})
    assert list(found.patches.feature_a) == ["K1"]
    outside = ellipsoidal_area(np.array([shapely.box(110.31, 19.601, 110.312, 19.605)]))[0]
    assert found.patches.area_m2.iloc[0] == pytest.approx(outside, rel=1e-6)


def test_corridor_length_inside_and_crossings_match_an_independent_computation(plans):
    frames, versions = plans
    found = detect(load_rules()["network_red_line"], frames, versions)
    lines = {k: g for k, g in zip(frames["road"].feature_key, frames["road"].geometry, strict=True)}
    lines.update(zip(frames["power"].feature_key, frames["power"].geometry, strict=True))
    red = dict(zip(frames["eco_redline"].feature_key, frames["eco_redline"].geometry, strict=True))
    for patch in found.patches.itertuples():
        inside = lines[patch.feature_a].intersection(red[patch.feature_b])
        assert patch.length_inside_m == pytest.approx(GEOD.geometry_length(inside), rel=1e-9)
        assert patch.crossings == len(shapely.get_parts(shapely.line_merge(inside)))
        assert patch.length_inside_m > 0 and patch.crossings >= 1


def test_a_corridor_with_an_approval_reference_is_an_accepted_exception():
    line = shapely.LineString([(110.30, 19.605), (110.32, 19.605)])
    red = shapely.box(110.305, 19.60, 110.31, 19.61)
    roads = gpd.GeoDataFrame({"feature_key": ["R1", "R2"], "ydyh_code": "1202", "orig_code": "高速公路",
                              "zone_code": None, "xzqdm": "469099", "corridor_m": 60.0,
                              "source_attributes": [{"PZWH": "琼发改〔2024〕12号"}, {"PZWH": ""}]},
                             geometry=[line, shapely.affinity.translate(line, yoff=0.002)], crs=4490)
    frames = {"road": roads, "eco_redline": _frame([red], ["0301"], zone=["1"])}
    found = detect(load_rules()["network_red_line"], frames, {"road": 1, "eco_redline": 1})
    assert dict(zip(found.patches.feature_a, found.patches.status, strict=True)) == {
        "R1": "accepted_exception", "R2": "open"}
    # a 60 m corridor across a 0.005° (~524 m) wide red line
    width = GEOD.line_length([110.305, 110.31], [19.605, 19.605])
    assert found.patches.area_m2.iloc[0] == pytest.approx(60 * width, rel=5e-3)
    assert found.patches.length_inside_m.iloc[0] == pytest.approx(width, rel=1e-9)


def test_detect_command_runs_every_rule_and_writes_the_patches(demo_store, tmp_path):
    import json

    from click.testing import CliRunner

    from multiplan.cli import cli, detect  # noqa: F401  (importing registers the command)

    out = tmp_path / "conflicts.gpkg"
    runner = CliRunner()
    result = runner.invoke(cli, ["--store", demo_store.url, "detect", "--dem", str(SAMPLE_DIR / "dem.tif"),
                                 "--out", str(out), "--no-save"])
    assert result.exit_code == 0, result.output
    assert "farmland" in result.output and "禁止" in result.output
    written = gpd.read_file(out, engine="pyogrio")
    assert {"rule", "severity", "feature_a", "feature_b", "area_m2", "area_mu", "xzqdm"} <= set(written.columns)
    assert set(written.rule) >= {"farmland", "network_farmland", "slope", "urban_boundary"}
    summary = json.loads(runner.invoke(cli, ["--store", demo_store.url, "--lang", "en", "detect", "--json",
                                             "--rule", "farmland", "--rule", "in_plan", "--no-save"]).output)
    assert [r["rule"] for r in summary["rules"]] == ["farmland", "in_plan"]
    assert summary["rules"][1]["overlaps"] == 2 and summary["rules"][1]["gaps"] == 2
    assert len(summary["rule_set_sha256"]) == 64 and summary["versions"]["farmland"] == 1
    csv_out = tmp_path / "c.csv"
    assert runner.invoke(cli, ["--store", demo_store.url, "detect", "--rule", "farmland", "--out", str(csv_out),
                               "--no-save"]).exit_code == 0
    assert csv_out.read_text("utf-8-sig").splitlines()[0].startswith("rule,")


def test_a_pair_geos_cannot_overlay_is_unknown_needs_review_never_no_conflict():
    # a self-intersecting (bow-tie) farmland polygon: GEOS raises a TopologyException at full precision and
    # on the 1 mm grid alike; the pair is reported for manual review, not silently dropped
    site = shapely.segmentize(shapely.box(110.30, 19.60, 110.31, 19.61), 0.0005)
    bow_tie = shapely.Polygon([(110.302, 19.602), (110.308, 19.608), (110.308, 19.602), (110.302, 19.608)])
    with pytest.raises(shapely.errors.GEOSException):
        shapely.intersection(site, bow_tie, grid_size=1e-8)
    frames = {"overall": _frame([site], ["0701"]), "farmland": _frame([bow_tie], ["0101"], layer_keys="F")}
    found = detect(load_rules()["farmland"], frames, {"overall": 1, "farmland": 1})
    assert found.patches.empty
    assert found.unknown == [{"status": "unknown_needs_review", "layer_a": "overall", "feature_a": "K0",
                              "layer_b": "farmland", "feature_b": "F0"}]


def test_picked_values_keep_their_storage_and_mark_missing_rows():
    # patch frames and one maps take text columns without a Python string per row: Arrow strings stay
    # Arrow strings, object columns stay objects with None (not NaN) where a row has no feature
    idx = np.array([2, -1, 0])
    codes = pd.Series(["0101", "0103", "0701"], dtype="str")
    picked = pick_values(codes, idx)
    assert not isinstance(picked, np.ndarray) and picked.dtype == codes.dtype
    assert list(picked[[0, 2]]) == ["0701", "0101"] and pd.isna(picked[1])
    zones = pd.Series(["A", None, "C"], dtype=object)
    assert pick_values(zones, idx).tolist() == ["C", None, "A"]
    assert pd.isna(pick_values(pd.Series([], dtype="str"), np.array([-1, -1]))).all()
