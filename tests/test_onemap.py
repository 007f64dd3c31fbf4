"""The one map: faces tile the union of the plans, carry every plan's class, and give county statistics."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from multiplan.crs import ellipsoidal_area
from multiplan.detection import run_detection
from multiplan.onemap import (
    SEVERITY_ORDER,
    _rules_broken,
    build_one_map,
    class_areas,
    conflict_areas,
    two_plan_differences,
)


@pytest.fixture(scope="module")
def demo_one_map(demo_store):
    frames = {v.layer: demo_store.read_features(v.layer, v.version) for v in demo_store.versions()}
    run = run_detection(demo_store, rule_ids=["farmland", "two_plan_1", "two_plan_2", "network_farmland"])
    return frames, run, build_one_map(frames, run["patches"])


def test_face_areas_add_up_to_the_area_of_the_union(demo_one_map):
    frames, _, one_map = demo_one_map
    polys = np.concatenate([np.asarray(f.geometry.values) for f in frames.values()
                            if f.geom_type.str.contains("Polygon").all()])
    union = shapely.union_all(polys, grid_size=1e-9)
    assert one_map["area_m2"].sum() == pytest.approx(ellipsoidal_area(np.array([union]))[0], rel=1e-6)
    assert one_map.is_valid.all()


def test_faces_carry_every_plans_classes_and_the_rules_they_break(demo_one_map):
    frames, run, one_map = demo_one_map
    assert {"overall_class", "land_use_class", "farmland_orig", "forest_zone", "urban_feature"} <= set(one_map.columns)
    farm_faces = one_map[one_map["rules"].fillna("").str.split(",").map(lambda r: "farmland" in r)]
    assert (farm_faces["severity"] == "forbidden").all()
    expected = run["patches"][run["patches"].rule == "farmland"]
    assert farm_faces["area_m2"].sum() == pytest.approx(
        ellipsoidal_area(np.array([shapely.union_all(expected.geometry.values)]))[0], rel=1e-6)
    county = conflict_areas(one_map).set_index("rule")
    farm_only = one_map[one_map["rules"].fillna("").str.split(",").map(lambda r: "farmland" in r)]
    assert county.loc["farmland", "area_m2"] == pytest.approx(farm_only["area_m2"].sum())
    corridor = run["patches"][run["patches"].rule == "network_farmland"]
    assert county.loc["network_farmland", "area_m2"] == pytest.approx(
        ellipsoidal_area(np.array([shapely.union_all(corridor.geometry.values)]))[0], rel=1e-6)


def test_two_plan_differences_match_the_two_plan_rules(demo_one_map):
    _, run, one_map = demo_one_map
    diffs = two_plan_differences(one_map).set_index("class")["area_m2"]
    patches = run["patches"]
    for kind, rule in (("urban_construction_land_use_not", "two_plan_1"), ("land_use_construction_urban_not", "two_plan_2")):
        planted = patches[patches.rule == rule]
        # the rules drop slivers under 200 m²; the one map keeps every face
        assert diffs[kind] >= planted["area_m2"].sum() - 1e-6
        assert diffs[kind] == pytest.approx(planted["area_m2"].sum(), rel=0.02)
    assert diffs["both_construction"] > 0 and diffs["both_non_construction"] > 0


def test_class_areas_per_plan_add_up_to_each_plans_area(demo_one_map):
    frames, _, one_map = demo_one_map
    areas = class_areas(one_map)
    farmland = areas[areas.layer == "farmland"]["area_m2"].sum()
    assert farmland == pytest.approx(frames["farmland"]["area_m2"].sum(), rel=1e-6)


def test_overlapping_features_of_one_plan_count_once():
    a = shapely.box(110.30, 19.60, 110.31, 19.61)
    b = shapely.box(110.305, 19.60, 110.315, 19.61)
    frame = gpd.GeoDataFrame({"feature_key": ["A", "B"], "ydyh_code": ["0101", "0103"], "orig_code": ["0101", "0103"],
                              "zone_code": None, "xzqdm": "469099"}, geometry=[a, b], crs=4490)
    one_map = build_one_map({"farmland": frame})
    assert len(one_map) == 3
    assert one_map["area_m2"].sum() == pytest.approx(ellipsoidal_area(np.array([a.union(b)]))[0], rel=1e-9)


def test_onemap_command_prints_county_statistics_and_writes_the_layer(demo_store, tmp_path):
    from click.testing import CliRunner

    from multiplan.cli import cli, detect  # noqa: F401  (importing registers the command)

    out = tmp_path / "one_map.gpkg"
    result = CliRunner().invoke(cli, ["--store", demo_store.url, "onemap", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "两规差异" in result.output and "城规建设、土规非建设" in result.output
    written = gpd.read_file(out, layer="one_map", engine="pyogrio")
    assert {"overall_class", "rules", "severity", "area_m2"} <= set(written.columns) and len(written) > 1000


def test_tiles_cut_faces_but_change_no_area(demo_store, monkeypatch):
    from multiplan import overlay

    frames = {v.layer: demo_store.read_features(v.layer, v.version) for v in demo_store.versions()}
    whole = build_one_map(frames)
    monkeypatch.setattr(overlay, "TILE_FEATURES", 10)  # a grid of some 10 x 10 tiles over the county
    tiled = build_one_map(frames)
    assert len(overlay.tile_grid(np.concatenate([f.geometry.values for f in frames.values()]))) > 50
    assert len(tiled) > len(whole)  # faces crossing a tile edge are cut there
    assert tiled["area_m2"].sum() == pytest.approx(whole["area_m2"].sum(), rel=1e-9)
    assert tiled.is_valid.all()
    pd_whole = class_areas(whole).set_index(["xzqdm", "layer", "class"])["area_m2"].sort_index()
    pd_tiled = class_areas(tiled).set_index(["xzqdm", "layer", "class"])["area_m2"].sort_index()
    assert pd_tiled.index.equals(pd_whole.index)
    # snap-rounding on the 1e-9° grid moves vertices by up to 0.05 mm, differently beside a seam, and may
    # give a sliver that narrow to the plan on the other side
    assert np.abs(pd_tiled.to_numpy() / pd_whole.to_numpy() - 1).max() < 1e-6
    # no two faces overlap: the faces' union has the area of their sum
    union = shapely.union_all(tiled.geometry.values, grid_size=1e-9)
    assert ellipsoidal_area(np.array([union]))[0] == pytest.approx(tiled["area_m2"].sum(), rel=1e-7)


def test_each_face_lists_the_rules_it_breaks_sorted_and_its_worst_severity():
    # 70 rules: a face's set of rules spans two 64-bit words
    rules = np.array([f"r{i:02d}" for i in range(70)] + ["r05", "r69", "r01"], dtype=object)
    faces = np.array([0] * 70 + [2, 2, 2])
    ranks = np.array([3] * 70 + [1, 3, 2])
    rule_column, severity = _rules_broken(4, faces, rules, ranks)
    assert rule_column[0] == ",".join(f"r{i:02d}" for i in range(70)) and severity[0] == SEVERITY_ORDER[3]
    assert rule_column[1] is None and severity[1] is None and rule_column[3] is None
    assert rule_column[2] == "r01,r05,r69" and severity[2] == SEVERITY_ORDER[1]


def test_tiles_polygonised_on_two_threads_give_the_faces_of_one(demo_store, monkeypatch):
    from multiplan import overlay

    frames = {v.layer: demo_store.read_features(v.layer, v.version) for v in demo_store.versions()}
    monkeypatch.setattr(overlay, "TILE_FEATURES", 40)  # a few dozen tiles
    monkeypatch.setattr(overlay, "threads", lambda: 1)
    one = build_one_map(frames)
    monkeypatch.setattr(overlay, "threads", lambda: 2)
    two = build_one_map(frames)
    assert len(two) == len(one) > 100
    assert shapely.equals_exact(two.geometry.values, one.geometry.values, tolerance=0).all()
    assert two.drop(columns="geometry").equals(one.drop(columns="geometry"))
