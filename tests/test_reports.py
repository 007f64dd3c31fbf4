"""Conflict reports: HTML with tables, charts and a map, CSV, XLSX and GeoPackage, in Chinese or English."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pyogrio

from multiplan.cli.demo import SAMPLE_DIR
from multiplan.reports import write_reports


def test_reports_for_the_province_and_each_county(demo_store, tmp_path):
    folders = write_reports(demo_store, tmp_path, "zh", dem=SAMPLE_DIR / "dem.tif")
    assert [f.name for f in folders] == ["province", "469099"]
    page = (tmp_path / "province" / "report.html").read_text("utf-8")
    assert "多规合一冲突检测报告" in page and "建设用地占用永久基本农田" in page and "禁止" in page
    assert page.count("data:image/png;base64,") == 2  # the chart and the map are inside the page
    assert "容差与压盖碎片" in page and "两规差异" in page
    rules = pd.read_csv(tmp_path / "469099" / "rules.csv", encoding="utf-8-sig")
    farmland = rules.set_index("rule").loc["farmland"]
    assert farmland["patches"] == 5 and farmland["min_area_m2"] == 200 and farmland["suppressed_count"] > 0
    with pd.ExcelFile(tmp_path / "province" / "report.xlsx") as workbook:
        sheets = workbook.sheet_names
    assert sheets == ["rules", "classes", "two_plan", "conflicts", "warnings"]
    layers = {str(n) for n in pyogrio.list_layers(tmp_path / "469099" / "conflicts.gpkg")[:, 0]}
    assert layers == {"conflicts", "one_map"}
    assert len(gpd.read_file(tmp_path / "469099" / "conflicts.gpkg", layer="conflicts")) == rules["patches"].sum() - \
        rules.set_index("rule").loc["in_plan", "patches"]


def test_english_report_for_one_county(demo_store, tmp_path):
    folders = write_reports(demo_store, tmp_path, "en", county="469099")
    assert [f.name for f in folders] == ["469099"]
    page = (folders[0] / "report.html").read_text("utf-8")
    assert "Multi-plan conflict report" in page and "Planned construction land on permanent basic farmland" in page
    assert "<script" not in page
