"""The sample county and `multiplan demo`: every layer loads, every awkwardness is recognised."""

from __future__ import annotations

import csv

import pytest

from multiplan.cli.demo import SAMPLE_DIR
from multiplan.specs import LAYER_IDS


def test_sample_data_is_small():
    total = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert total < 10 * 1024 * 1024


def test_demo_loads_all_twelve_layers(demo_store):
    versions = {v.layer: v for v in demo_store.versions()}
    assert set(versions) == set(LAYER_IDS)
    assert all(v.n_rejected == 0 and v.n_loaded > 0 for v in versions.values())


def test_awkward_sample_files_are_recognised(demo_store):
    forest = demo_store.version("forest")
    assert forest.crs == "EPSG:4546" and forest.crs_guessed and "prj_missing" in forest.report["notes"]
    assert demo_store.version("land_use").crs == "EPSG:4525" and not demo_store.version("land_use").crs_guessed
    assert demo_store.version("urban").crs in ("EPSG:4508", "EPSG:4546")
    assert demo_store.version("farmland").encoding == "gbk" and demo_store.version("farmland").encoding_guessed
    assert demo_store.version("urban").report["unknown_codes"] == {"X9": 2}


def test_planted_in_plan_overlaps_and_gaps_are_found(demo_store):
    with open(SAMPLE_DIR / "planted_conflicts.csv", encoding="utf-8-sig") as fh:
        planted = list(csv.DictReader(fh))
    for row in planted:
        if row["conflict_type"] == "in_plan_overlap":
            quality = demo_store.version(row["layer_a"]).report["quality"]
            found = [o for o in quality["overlaps"] if set(o["keys"]) == {row["feature_a"], row["feature_b"]}]
            assert len(found) == 1, row
            assert found[0]["area_m2"] == pytest.approx(float(row["approx_area_m2"]), rel=0.01)
        elif row["conflict_type"] == "in_plan_gap":
            quality = demo_store.version(row["layer_a"]).report["quality"]
            assert any(g["area_m2"] == pytest.approx(float(row["approx_area_m2"]), rel=0.01) for g in quality["gaps"])
    assert sum(len(demo_store.version(lid).report["quality"].get("overlaps", []))
               for lid in ("overall", "land_use", "urban", "ocean")) == 2


def test_demo_detects_and_writes_the_report(demo_store):
    from pathlib import Path

    report = Path(demo_store.url).parent / "report"
    assert (report / "province" / "report.html").exists() and (report / "469099" / "report.xlsx").exists()
    assert len(demo_store.detection_runs()) == 1
    assert {c["rule"] for c in demo_store.conflicts()} >= {"farmland", "red_line_1", "slope", "network_farmland"}
