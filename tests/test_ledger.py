"""The conflict ledger over both stores: runs, patches, statuses that persist, reruns, opinions."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from multiplan.detection import run_detection
from multiplan.ingest import load_plan
from multiplan.ledger import LedgerError
from tests.builders import write_shapefile
from tests.test_store import _raw_sql


def _plans(tmp_path, build_on_farmland: bool):
    farm = gpd.GeoDataFrame({"JBNTTBBH": ["F1", "F2"], "DLBM": ["0101", "0103"], "XZQDM": "469099"},
                            geometry=[shapely.box(110.30, 19.60, 110.31, 19.61), shapely.box(110.32, 19.60, 110.33, 19.61)],
                            crs=4490)
    overall = gpd.GeoDataFrame({
        "BSM": ["O1", "O2"], "YDYHFLDM": ["1001" if build_on_farmland else "0101", "0103"],
        "GHFQDM": ["041", "03"], "XZQDM": "469099"},
        geometry=[shapely.box(110.305, 19.60, 110.315, 19.61), shapely.box(110.32, 19.60, 110.33, 19.61)], crs=4490)
    tag = "a" if build_on_farmland else "b"
    return (write_shapefile(farm, tmp_path / f"farm{tag}", "farm"),
            write_shapefile(overall, tmp_path / f"overall{tag}", "overall"))


def test_a_conflict_lives_from_detection_to_resolution(store, store_url, tmp_path):
    farm, overall = _plans(tmp_path, build_on_farmland=True)
    load_plan(store, "farmland", farm)
    load_plan(store, "overall", overall)
    rules = ["farmland", "boundary_farmland"]
    first = run_detection(store, rule_ids=rules)
    saved = store.save_detection(first, first["patches"])
    assert len(saved["new"]) == 2 and saved["unchanged"] == saved["resolved"] == []
    cases = {c["rule"]: c for c in store.conflicts()}
    assert set(cases) == {"farmland", "boundary_farmland"}
    case = cases["farmland"]
    assert case["status"] == "open" and case["feature_a"] == "O1" and case["feature_b"] == "F1"
    assert case["give_way"] == "a" and "永久基本农田优先" in case["suggestion_zh"]
    patches = store.read_patches(saved["run_id"])
    assert len(patches) == 2 and set(patches.conflict_id) == set(saved["new"])
    assert patches.area_m2.sum() == pytest.approx(first["patches"].area_m2.sum(), rel=1e-9)

    cid = case["conflict_id"]
    store.transition_conflict(cid, "under_coordination", "张规划", "报县政府协调")
    store.add_conflict_opinion(cid, "李科长", "区政府", "同意调整总体规划")
    with pytest.raises(LedgerError):
        store.transition_conflict(cid, "no_such_status", "x", "y")
    again = run_detection(store, rule_ids=rules)
    rerun = store.save_detection(again, again["patches"])
    assert sorted(rerun["unchanged"]) == sorted(saved["new"]) and rerun["new"] == []
    assert store.conflicts(rule="farmland")[0]["status"] == "under_coordination"  # kept across the rerun

    _, fixed = _plans(tmp_path, build_on_farmland=False)
    load_plan(store, "overall", fixed)
    third = run_detection(store, rule_ids=rules)
    resolved = store.save_detection(third, third["patches"])
    assert cid in resolved["resolved"]
    assert store.conflicts(rule="farmland")[0]["status"] == "resolved_adjust_a"
    kinds = [e["kind"] for e in store.conflict_events(cid)]
    assert kinds == ["detected", "status", "opinion", "gone_in_rerun"]
    events = store.conflict_events(cid)
    assert events[1]["actor"] == "张规划" and events[2]["author"] == "区政府" and events[3]["text"] == "plan_a_changed"
    assert len(store.detection_runs()) == 3
    for sql in ("DELETE FROM mp_conflict_events", "UPDATE conflict_patches SET rule = 'x'",
                "UPDATE mp_detection_runs SET actor = 'x'"):
        with pytest.raises(Exception, match="append-only|immutable"):
            _raw_sql(store_url, sql)
    assert len(store.conflict_events(cid)) == 4


def test_closed_conflicts_reopen_only_on_purpose(store, tmp_path):
    farm, overall = _plans(tmp_path, build_on_farmland=True)
    load_plan(store, "farmland", farm)
    load_plan(store, "overall", overall)
    run = run_detection(store, rule_ids=["farmland"])
    cid = store.save_detection(run, run["patches"])["new"][0]
    store.transition_conflict(cid, "false_positive", "王", "数字化误差")
    with pytest.raises(LedgerError):
        store.transition_conflict(cid, "under_coordination", "王", "x")
    assert store.transition_conflict(cid, "open", "王", "复核后重新打开")["status"] == "open"


def test_the_newest_run_is_seen_in_a_block_that_read_the_versions_before_it(store, tmp_path):
    farm, overall = _plans(tmp_path, build_on_farmland=True)
    load_plan(store, "farmland", farm)
    load_plan(store, "overall", overall)
    with store.one_connection():
        assert store.versions() and store.latest_run_id() is None
        first = run_detection(store, rule_ids=["farmland"])
        run_id = store.save_detection(first, first["patches"])["run_id"]
        assert store.latest_run_id() == run_id
        store.versions()
        assert store.latest_run_id() == run_id
