"""The versioned plan store: the same behaviour from both back-ends."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely

from multiplan.crs import ellipsoidal_area
from multiplan.diff import diff_versions
from multiplan.errors import NotFoundError, StorageError
from multiplan.ingest import LoadOptions, load_plan
from multiplan.store import open_store
from tests.builders import grid_cells, land_use_frame, write_shapefile

ROOT = Path(__file__).resolve().parents[1]


def _state(store):
    """Everything a load may change, except the audit trail."""
    versions = store.versions()
    return versions, {(v.layer, v.version): len(store.read_features(v.layer, v.version)) for v in versions}


def test_every_load_is_a_new_immutable_version_and_old_ones_stay(store, tmp_path):
    first = land_use_frame()
    second = land_use_frame(codes=["030"] * 16)
    load_plan(store, "land_use", write_shapefile(first, tmp_path / "a", "lu"), LoadOptions(label="2019"))
    load_plan(store, "land_use", write_shapefile(second, tmp_path / "b", "lu"), LoadOptions(label="2021 修编"))
    versions = store.versions("land_use")
    assert [(v.version, v.label, v.n_loaded) for v in versions] == [(1, "2019", 16), (2, "2021 修编", 16)]
    assert versions[0].source_name == "lu.shp" and len(versions[0].source_sha256) == 64
    assert versions[0].source_sha256 != versions[1].source_sha256
    assert store.version("land_use").version == 2
    assert list(store.read_features("land_use", 1).orig_code) == list(first.YTQLXDM)
    assert set(store.read_features("land_use", 2).orig_code) == {"030"}
    with pytest.raises(NotFoundError):
        store.version("land_use", 3)
    with pytest.raises(NotFoundError):
        store.version("forest")
    actions = [(e.action, e.layer, e.version) for e in store.audit_log()]
    assert actions == [("init", None, None), ("load", "land_use", 1), ("load", "land_use", 2)]


def test_bbox_reads_only_what_touches_it(store, tmp_path):
    load_plan(store, "land_use", write_shapefile(land_use_frame(), tmp_path, "lu"))
    part = store.read_features("land_use", 1, bbox=(110.201, 19.501, 110.22, 19.52))
    assert list(part.feature_no) == [1]


def _raw_sql(store_url: str, sql: str) -> None:
    if store_url.startswith("postgresql"):
        from multiplan.store.postgis import PostgisStore

        store = PostgisStore(store_url)
        try:
            with store.engine.begin() as conn:
                conn.exec_driver_sql(sql)
        finally:
            store.close()
    else:
        with sqlite3.connect(store_url) as con:
            # GDAL registers these for its rtree triggers; a GIS editing the file has them
            for name in ("ST_IsEmpty", "ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"):
                con.create_function(name, 1, lambda g: 0)
            con.execute(sql)


@pytest.mark.parametrize("sql", [
    "UPDATE mp_audit_log SET actor = 'someone else'",
    "DELETE FROM mp_audit_log",
    "UPDATE mp_plan_versions SET label = 'rewritten'",
    "DELETE FROM plan_land_use",
    "UPDATE plan_land_use SET orig_code = '999'",
])
def test_audit_trail_is_append_only_and_versions_are_immutable(store, store_url, tmp_path, sql):
    load_plan(store, "land_use", write_shapefile(land_use_frame(), tmp_path, "lu"))
    with pytest.raises(Exception, match="append-only|immutable"):
        _raw_sql(store_url, sql)
    assert store.versions()[0].label == "" and len(store.audit_log()) == 2


def test_failed_load_leaves_nothing_but_a_failed_load_record(store, tmp_path):
    good = write_shapefile(land_use_frame(), tmp_path / "a", "lu")
    load_plan(store, "land_use", good)
    before = _state(store)
    frame = land_use_frame()
    frame = frame.set_geometry([*frame.geometry[:15], shapely.box(120, 19, 120.1, 19.1)], crs=4490)
    with pytest.raises(Exception, match="#16"):
        load_plan(store, "land_use", write_shapefile(frame, tmp_path / "b", "lu"))
    assert _state(store) == before
    failed = store.audit_log()[-1]
    assert failed.action == "load_failed" and failed.version is None and "#16" in failed.detail["reason"]
    assert load_plan(store, "land_use", good)["version"] == 2  # no hole in the numbering


def test_concurrent_loads_of_one_layer_are_serialised(store_url, tmp_path):
    shp = write_shapefile(land_use_frame(8), tmp_path, "lu")
    procs = [subprocess.Popen([sys.executable, "-m", "multiplan.cli", "--store", store_url, "load", "land_use",
                               str(shp), "--label", f"p{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}) for i in range(4)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    with open_store(store_url) as store:
        versions = store.versions("land_use")
        assert sorted(v.version for v in versions) == [1, 2, 3, 4]
        assert sorted(v.label for v in versions) == ["p0", "p1", "p2", "p3"]
        assert all(len(store.read_features("land_use", v.version)) == 64 for v in versions)


_KILLABLE = """
import sys, time
from pathlib import Path
from multiplan.store import open_store
from multiplan.ingest import LoadOptions, load_plan

def pause(stage, done, total):
    if stage == "read" and done >= 200:
        Path(sys.argv[3]).write_text("staged")
        time.sleep(600)

with open_store(sys.argv[1]) as store:
    load_plan(store, "land_use", sys.argv[2], LoadOptions(chunk_size=200), progress=pause)
"""


def _digest(store_url: str) -> str:
    return hashlib.sha256(Path(store_url).read_bytes()).hexdigest() if not store_url.startswith("postgresql") else ""


def test_a_killed_load_changes_nothing_and_a_retry_succeeds(store_url, tmp_path):
    shp = write_shapefile(land_use_frame(20), tmp_path, "lu")
    with open_store(store_url) as store:
        load_plan(store, "land_use", shp)
        before = _state(store)
    digest = _digest(store_url)
    flag = tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, store_url, str(shp), str(flag)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while not flag.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert flag.exists(), "the load never reached its first chunk"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _digest(store_url) == digest
    with open_store(store_url) as store:
        time.sleep(0.2)  # PostGIS notices the dead connection and rolls back
        assert _state(store) == before
        assert load_plan(store, "land_use", shp)["version"] == 2


@pytest.mark.postgis
def test_a_dropped_database_connection_mid_load_changes_nothing(pg_schema_url, tmp_path):
    shp = write_shapefile(land_use_frame(20), tmp_path, "lu")
    with open_store(pg_schema_url) as store:
        store.init()
        before = _state(store)

        def drop_connections(stage, done, total):
            if stage == "read" and done == 100:
                with psycopg.connect(os.environ["MULTIPLAN_TEST_DATABASE_URL"], autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                                  "AND query NOT ILIKE '%pg_terminate_backend%'")
        with pytest.raises(StorageError):
            load_plan(store, "land_use", shp, LoadOptions(chunk_size=100), progress=drop_connections)
        assert _state(store) == before
        assert store.audit_log()[-1].action == "load_failed"
        assert load_plan(store, "land_use", shp)["version"] == 1


def test_diff_lists_feature_changes_and_class_moves(store, tmp_path):
    v1 = land_use_frame()
    v2 = land_use_frame()
    cells = grid_cells()
    v2.loc[3, "YTQLXDM"] = "030"                       # LU0003: 一般农地区 (01) -> 城镇建设用地区
    v2.loc[4, "备注"] = "改了备注"                        # attributes only
    moved = shapely.affinity.translate(cells[5], xoff=0.0001)
    v2 = v2.set_geometry([*cells[:5], moved, *cells[6:]], crs=4490)  # LU0005 geometry changed
    v2 = v2.drop(index=15)                               # LU0015 removed
    added = gpd.GeoDataFrame({"BSM": ["LU9999"], "YTQLXDM": ["090"], "GZQLXDM": ["010"], "XZQDM": ["469099"],
                              "备注": ["新增"]}, geometry=[shapely.box(110.30, 19.50, 110.31, 19.51)], crs=4490)
    v2 = pd.concat([v2, added], ignore_index=True)
    load_plan(store, "land_use", write_shapefile(v1, tmp_path / "a", "lu"))
    load_plan(store, "land_use", write_shapefile(v2.set_crs(4490, allow_override=True), tmp_path / "b", "lu"))
    d = diff_versions(store, "land_use", 1, 2)
    assert d["matched_by"] == "feature_key"
    assert d["added"] == ["LU9999"] and d["removed"] == ["LU0015"]
    assert d["geometry_changed"] == ["LU0005"]
    assert {a["key"]: a["fields"] for a in d["attributes_changed"]} == {"LU0003": ["YTQLXDM"], "LU0004": ["备注"]}
    move = next(m for m in d["class_moves"] if m["from"] == "01")
    assert move["to"] == "07|08|09|10|11|12|13|14"
    assert move["area_m2"] == pytest.approx(ellipsoidal_area(np.array([cells[3]]))[0], rel=1e-6)
    balance = {b["code"]: b for b in d["class_balance"]}
    assert balance["01"]["out_m2"] == pytest.approx(move["area_m2"], rel=1e-9)
    assert balance["07|08|09|10|11|12|13|14"]["in_m2"] >= move["area_m2"]


def test_store_not_initialised_is_a_clear_error(tmp_path):
    with open_store(str(tmp_path / "new.gpkg")) as store, pytest.raises(StorageError, match="multiplan init"):
        store.versions()


@pytest.mark.postgis
def test_postgis_keeps_attributes_as_json_objects_and_nulls_as_nulls(pg_schema_url, tmp_path):
    frame = land_use_frame(2)
    frame["备注"] = ["带\t制表符", None, "引号\"和\\反斜杠", "😀 emoji"]
    with open_store(pg_schema_url) as store:
        store.init()
        load_plan(store, "land_use", write_shapefile(frame, tmp_path, "lu", encoding="UTF-8", cpg="UTF-8"))
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT jsonb_typeof(source_attributes), source_attributes->>'备注', corridor_m IS NULL, "
                "ST_SRID(geom), ST_GeometryType(geom) FROM plan_land_use ORDER BY feature_no").all()
    assert [r[0] for r in rows] == ["object"] * 4
    assert [r[1] for r in rows] == ["带\t制表符", None, "引号\"和\\反斜杠", "😀 emoji"]
    assert all(r[2] for r in rows) and {r[3] for r in rows} == {4490} and rows[0][4] == "ST_MultiPolygon"


def test_calls_sharing_one_connection_commit_writes_and_roll_back_failures(store_url):
    from multiplan import users

    with open_store(store_url) as store, open_store(store_url) as other, store.one_connection():
        users.add_user(store, "anna", "a-long-password", "planner")
        assert users.get_user(other, "anna")["role"] == "planner"  # committed, though the block goes on
        with pytest.raises(RuntimeError), store._records() as tx:
            tx.insert("mp_users", {"username": "ben", "display_name": "ben", "password_hash": "x", "role": "viewer",
                                   "active": 1, "created_at": "2026-01-01", "updated_at": "2026-01-01"})
            raise RuntimeError("the write fails half-way")
        with store.one_connection():  # nested blocks keep the outer one's connection
            assert [u["username"] for u in users.list_users(store)] == ["anna"]
        users.add_user(store, "cleo", "a-long-password", "viewer")  # the connection still serves writes
    with open_store(store_url) as store:
        assert [u["username"] for u in users.list_users(store)] == ["anna", "cleo"]
        assert [e.action for e in store.audit_log()][-2:] == ["user_add", "user_add"]


@pytest.mark.postgis
def test_postgis_calls_in_one_block_use_one_session_without_parallel_workers(pg_schema_url):
    with open_store(pg_schema_url) as store:
        store.init()
        with store.one_connection():
            assert store.engine.pool.checkedout() == 0  # nothing asked yet: nothing taken (a cached tile)
            rows = []
            for _ in range(3):
                rows += store._rows("SELECT pg_backend_pid() AS pid, "
                                    "current_setting('max_parallel_workers_per_gather') AS workers, "
                                    "current_setting('plan_cache_mode') AS plans")
                assert store.engine.pool.checkedout() == 1  # held between calls
        assert store.engine.pool.checkedout() == 0
        assert len({r["pid"] for r in rows}) == 1
        assert {(r["workers"], r["plans"]) for r in rows} == {("0", "force_generic_plan")}
