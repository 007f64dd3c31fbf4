"""Plan indicators: floors, quotas and no-decrease checks raise warnings in the load report and in detect."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
from click.testing import CliRunner

from multiplan.cli import cli, detect  # noqa: F401  (importing registers the command)
from multiplan.cli.demo import SAMPLE_DIR
from multiplan.indicators import load_indicators
from multiplan.ingest import load_plan


def test_sample_county_meets_its_targets(demo_store):
    for ind in load_indicators():
        assert demo_store.version(ind.layer).report["warnings"] == []
    totals = next(i for i in load_indicators() if i.id == "farmland_floor").totals(demo_store.version("farmland").report)
    assert totals["469099"] == pytest.approx(sum(r["area_m2"] for r in demo_store.version("farmland").report["area_by_class"]))


def test_lost_farmland_and_a_shrinking_red_line_raise_warnings(store, tmp_path):
    farmland = gpd.read_file(f"zip://{SAMPLE_DIR / 'plans' / 'farmland.zip'}", engine="pyogrio", encoding="gbk")
    half = tmp_path / "farmland_half.gpkg"
    farmland.iloc[: len(farmland) // 2].to_file(half, engine="pyogrio")
    report = load_plan(store, "farmland", half)
    warning = next(w for w in report["warnings"] if w["indicator"] == "farmland_floor")
    assert warning["scope"] == "469099" and warning["value_m2"] < warning["target_m2"] and warning["gap_m2"] < 0

    red = gpd.read_file(SAMPLE_DIR / "plans" / "eco_redline.geojson", engine="pyogrio")
    assert load_plan(store, "eco_redline", SAMPLE_DIR / "plans" / "eco_redline.geojson")["warnings"] == []
    smaller = tmp_path / "red.geojson"
    red.iloc[1:].to_file(smaller, driver="GeoJSON", engine="pyogrio")
    shrink = load_plan(store, "eco_redline", smaller)["warnings"]
    assert [w["check"] for w in shrink] == ["no_decrease"] and shrink[0]["value_m2"] < shrink[0]["target_m2"]

    result = CliRunner().invoke(cli, ["--store", store.url, "detect", "--json", "--rule", "red_line_1"])
    assert result.exit_code == 0, result.output
    warned = {w["indicator"] for w in json.loads(result.output)["warnings"]}
    assert warned == {"farmland_floor", "red_line_no_decrease"}
