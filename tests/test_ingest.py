"""Plan ingestion: formats, encodings, CRSs, geometry repair, classification and refusals."""

from __future__ import annotations

import json
import sqlite3
import struct
import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio.raw
import pyproj
import pytest
import shapely

from multiplan.crs import ellipsoidal_area
from multiplan.errors import CRSError, InputError
from multiplan.ingest import LoadOptions, load_plan
from tests.builders import (
    flag_dbf_deleted,
    grid_cells,
    land_use_frame,
    set_dbf_record_count,
    write_shapefile,
    zip_shapefile,
)


def _refused(store, layer, path, key, *names, options=None):
    """Load must fail with ``key``, name the file (and features), and leave only an audit record."""
    before = store.versions()
    audit_before = len(store.audit_log())
    with pytest.raises(InputError) as err:
        load_plan(store, layer, path, options)
    assert err.value.key == key
    text = str(err.value)
    assert path.name in text or any(n in text for n in names)
    for name in names:
        assert name in text
    assert store.versions() == before
    log = store.audit_log()
    assert len(log) == audit_before + 1 and log[-1].action == "load_failed"
    return err.value


def test_zipped_gbk_shapefile_in_a_subfolder_loads_with_detected_encoding(store, tmp_path):
    shp = write_shapefile(land_use_frame(), tmp_path / "src", "lu")
    z = zip_shapefile(shp, tmp_path / "规划成果.zip", subfolder="成果/土地利用")
    report = load_plan(store, "land_use", z, LoadOptions(label="2020版"))
    assert report["version"] == 1
    assert report["counts"] == {"read": 16, "loaded": 16, "rejected": 0, "deleted_records": 0, "repaired": 0}
    assert report["encoding"] == {"used": "gbk", "source": "detected", "guessed": True}
    assert report["crs"]["used"] == "EPSG:4490" and not report["crs"]["guessed"]
    features = store.read_features("land_use", 1)
    assert features["source_attributes"][0]["备注"] == "土地利用规划 测试"
    assert set(features.ydyh_code) == {"01", "03", "07|08|09|10|11|12|13|14"}
    assert list(features.feature_key[:2]) == ["LU0000", "LU0001"]


def test_areas_by_class_are_ellipsoidal_and_add_up(store, tmp_path):
    frame = land_use_frame()
    shp = write_shapefile(frame, tmp_path, "lu")
    report = load_plan(store, "land_use", shp)
    expected = ellipsoidal_area(np.array(grid_cells()))
    total = sum(r["area_m2"] for r in report["area_by_class"])
    assert total == pytest.approx(expected.sum(), rel=1e-9)
    cropland = next(r for r in report["area_by_class"] if r["code"] == "01")
    mask = np.isin(frame.YTQLXDM, ["010", "020"])
    assert cropland["area_m2"] == pytest.approx(expected[mask].sum(), rel=1e-9)
    assert cropland["area_mu"] == pytest.approx(cropland["area_m2"] / (2000 / 3), rel=1e-6)
    stored = store.read_features("land_use", 1)
    np.testing.assert_allclose(stored.area_m2, expected, rtol=1e-9)


def test_cpg_is_honoured_and_encoding_option_overrides(store, tmp_path):
    frame = land_use_frame()
    shp = write_shapefile(frame, tmp_path, "lu", encoding="UTF-8", cpg="UTF-8")
    assert load_plan(store, "land_use", shp)["encoding"]["source"] == "cpg"
    shp2 = write_shapefile(frame, tmp_path / "b", "lu", encoding="GBK", cpg="936")
    report = load_plan(store, "land_use", shp2)
    assert report["encoding"] == {"used": "gbk", "source": "cpg", "guessed": False}
    shp3 = write_shapefile(frame, tmp_path / "c", "lu", encoding="GBK")
    report = load_plan(store, "land_use", shp3, LoadOptions(encoding="gb18030"))
    assert report["encoding"]["source"] == "option"
    assert store.read_features("land_use", 3)["source_attributes"][0]["备注"] == "土地利用规划 测试"


def test_html_cpg_and_prj_fall_back_to_detection_and_say_so(store, tmp_path):
    html = "<!DOCTYPE html><html><head><title>404</title></head></html>"
    shp = write_shapefile(land_use_frame(), tmp_path, "lu", epsg=4525, cpg=html, prj=html)
    report = load_plan(store, "land_use", shp)
    assert {"cpg_unusable", "prj_unusable"} <= set(report["notes"])
    assert report["encoding"]["guessed"] and report["crs"] == {
        "used": "EPSG:4525", "source": "detected", "guessed": True, "note": "eastings carry zone prefix 37"}


@pytest.mark.parametrize("epsg", [4525, 4546, 4508])
def test_missing_prj_is_recognised_from_coordinates(store, tmp_path, epsg):
    shp = write_shapefile(land_use_frame(), tmp_path, "lu", epsg=epsg, prj=False)
    report = load_plan(store, "land_use", shp)
    assert report["crs"]["guessed"] and "prj_missing" in report["notes"]
    back = store.read_features("land_use", 1)
    expected = np.array(grid_cells())
    # 4508 and 4546 are one projection: either reading puts the cells back where they were
    assert shapely.equals_exact(shapely.normalize(back.geometry.values[0]),
                                shapely.normalize(shapely.multipolygons([expected[0]])), tolerance=1e-7)


def test_crs_option_overrides_a_wrong_prj(store, tmp_path):
    wrong = pyproj.CRS.from_epsg(4490).to_wkt("WKT1_ESRI")
    shp = write_shapefile(land_use_frame(), tmp_path, "lu", epsg=4525, prj=wrong)
    _refused(store, "land_use", shp, "out_of_region", "EPSG:4490", "#1")
    report = load_plan(store, "land_use", shp, LoadOptions(crs=pyproj.CRS.from_epsg(4525)))
    assert report["crs"]["source"] == "option"


def test_unknown_crs_is_refused(store, tmp_path):
    frame = land_use_frame().to_crs(3857)  # web mercator metres, no .prj: matches no CGCS2000 zone
    shp = write_shapefile(frame, tmp_path, "lu", epsg=None, prj=False)
    err = _refused(store, "land_use", shp, "crs_unknown", "--crs")
    assert isinstance(err, CRSError)


def test_geopackage_with_layer_choice_and_geojson(store, tmp_path):
    gpkg = tmp_path / "plans.gpkg"
    land_use_frame().to_file(gpkg, layer="土地利用", engine="pyogrio")
    land_use_frame(2).to_file(gpkg, layer="other", engine="pyogrio")
    _refused(store, "land_use", gpkg, "gpkg_layer_choice", "土地利用")
    _refused(store, "land_use", gpkg, "gpkg_layer_missing", "nope", options=LoadOptions(source_layer="nope"))
    assert load_plan(store, "land_use", gpkg, LoadOptions(source_layer="土地利用"))["counts"]["loaded"] == 16
    geojson = tmp_path / "lu.geojson"
    land_use_frame().to_file(geojson, driver="GeoJSON", engine="pyogrio")
    report = load_plan(store, "land_use", geojson)
    assert report["counts"]["loaded"] == 16 and report["encoding"]["used"] == "utf-8"


def test_z_and_m_coordinates_are_dropped_and_curves_linearised(store, tmp_path):
    cells = grid_cells()
    z_cells = [shapely.force_3d(c, 12.5) for c in cells]
    frame = land_use_frame().set_geometry(z_cells, crs=4490)
    shp = write_shapefile(frame, tmp_path, "lu")
    load_plan(store, "land_use", shp)
    assert not store.read_features("land_use", 1).has_z.any()


@pytest.mark.parametrize("declared", ["Unknown", "Polygon"])  # a "Polygon" layer takes the Arrow read first
def test_curve_polygons_are_linearised(store, tmp_path, declared):
    # a CurvePolygon (two circular arcs) in WKB, as CAD-derived GeoPackages carry them
    cx, cy, r = 110.25, 19.55, 0.01
    pts = [(cx + r, cy), (cx, cy + r), (cx - r, cy), (cx, cy - r), (cx + r, cy)]
    ring = struct.pack("<BII", 1, 8, len(pts)) + b"".join(struct.pack("<dd", *p) for p in pts)
    wkb = struct.pack("<BII", 1, 10, 1) + ring
    gpkg = tmp_path / "curve.gpkg"
    pyogrio.raw.write(gpkg, np.array([wkb], dtype=object), [np.array(["010"], dtype=object)], fields=["YTQLXDM"],
                      driver="GPKG", geometry_type="Unknown", crs="EPSG:4490", layer="c")
    if declared == "Polygon":
        with sqlite3.connect(gpkg) as con:  # as a tool that declares what it meant, not what it wrote
            con.execute("UPDATE gpkg_geometry_columns SET geometry_type_name = 'POLYGON'")
        assert pyogrio.read_info(gpkg)["geometry_type"] == "Polygon"
    load_plan(store, "land_use", gpkg)
    stored = store.read_features("land_use", 1)
    circle = ellipsoidal_area(np.array([shapely.Point(cx, cy).buffer(r, 256)]))[0]
    assert stored.area_m2[0] == pytest.approx(circle, rel=2e-3)
    assert len(stored.geometry[0].geoms[0].exterior.coords) > 20


def test_bowtie_and_unclosed_ring_are_repaired_and_recorded(store, tmp_path):
    frame = land_use_frame(2)
    x0, y0 = 110.21, 19.51
    bowtie = shapely.Polygon([(x0, y0), (x0 + 0.01, y0 + 0.01), (x0 + 0.01, y0), (x0, y0 + 0.01), (x0, y0)])
    geoms = list(frame.geometry)
    geoms[1] = bowtie
    frame = frame.set_geometry(geoms, crs=4490)
    shp = write_shapefile(frame, tmp_path, "lu")
    report = load_plan(store, "land_use", shp)
    repairs = [r for r in report["repairs"] if r["kind"] == "invalid_polygon"]
    assert [r["feature"] for r in repairs] == [2]
    assert "Self-intersection" in repairs[0]["detail"]
    stored = store.read_features("land_use", 1)
    assert stored.is_valid.all()
    # the bow-tie's two triangles keep their full area
    half = ellipsoidal_area(np.array([shapely.Polygon([(x0, y0), (x0 + 0.005, y0 + 0.005), (x0, y0 + 0.01)])]))[0]
    assert stored.area_m2[1] == pytest.approx(2 * half, rel=1e-6)


def test_wrong_ring_orientation_is_normalised_and_recorded(store, tmp_path):
    frame = land_use_frame(2)
    geoms = [shapely.orient_polygons(g, exterior_cw=False) for g in frame.geometry]  # CCW shells
    frame = frame.set_geometry(geoms, crs=4490)
    geojson = tmp_path / "lu.geojson"
    clockwise = [shapely.orient_polygons(g, exterior_cw=True) for g in geoms]
    frame.set_geometry(clockwise, crs=4490).to_file(geojson, driver="GeoJSON", engine="pyogrio",
                                                   layer_options={"RFC7946": "NO", "WRITE_BBOX": "NO"})
    report = load_plan(store, "land_use", geojson)
    assert len([r for r in report["repairs"] if r["kind"] == "ring_orientation"]) == 4
    stored = store.read_features("land_use", 1)
    for g in stored.geometry:
        assert all(shapely.is_ccw(p.exterior) for p in g.geoms)


def test_empty_geometries_are_rejected_with_feature_numbers(store, tmp_path):
    frame = land_use_frame(2)
    geoms = list(frame.geometry)
    geoms[2] = None
    frame = frame.set_geometry(geoms, crs=4490)
    shp = write_shapefile(frame, tmp_path, "lu")
    report = load_plan(store, "land_use", shp)
    assert report["counts"]["rejected"] == 1 and report["rejected"][0]["feature"] == 3
    assert report["counts"]["loaded"] == 3


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e300])
def test_absurd_coordinates_are_refused(store, tmp_path, bad):
    frame = land_use_frame(2)
    geoms = list(frame.geometry)
    geoms[3] = shapely.Polygon([(110.2, 19.5), (bad, 19.5), (110.25, 19.55), (110.2, 19.5)])
    frame = frame.set_geometry(geoms, crs=4490)
    gpkg = tmp_path / "lu.gpkg"
    frame.to_file(gpkg, engine="pyogrio")
    _refused(store, "land_use", gpkg, "bad_coordinates", "#4")


def test_features_outside_hainan_are_refused(store, tmp_path):
    frame = land_use_frame(2)
    geoms = list(frame.geometry)
    geoms[0] = shapely.affinity.translate(geoms[0], xoff=10.0)  # 120E: Taiwan strait
    shp = write_shapefile(frame.set_geometry(geoms, crs=4490), tmp_path, "lu")
    _refused(store, "land_use", shp, "out_of_region", "#1")


def test_lines_delivered_as_a_polygon_plan_and_mixed_types_are_refused(store, tmp_path):
    frame = land_use_frame(2)
    lines = frame.set_geometry(frame.boundary, crs=4490)
    shp = write_shapefile(lines, tmp_path, "lines")
    _refused(store, "land_use", shp, "wrong_geometry", "polygon")
    mixed = frame.set_geometry([*frame.geometry[:2], *frame.boundary[2:]], crs=4490)
    gj = tmp_path / "mixed.geojson"
    mixed.to_file(gj, driver="GeoJSON", engine="pyogrio")
    _refused(store, "land_use", gj, "mixed_geometry")


def test_unknown_codes_are_counted_never_dropped(store, tmp_path):
    codes = ["010"] * 12 + ["999", "999", None, "010"]
    shp = write_shapefile(land_use_frame(codes=codes), tmp_path, "lu")
    report = load_plan(store, "land_use", shp)
    assert report["unknown_codes"] == {"999": 2, "None": 1}
    assert report["counts"]["loaded"] == 16
    stored = store.read_features("land_use", 1)
    assert list(stored.orig_code[12:14]) == ["999", "999"] and stored.ydyh_code[12] is None


def test_numeric_class_codes_get_their_zero_padding_back(store, tmp_path):
    frame = land_use_frame()
    frame["YTQLXDM"] = [10, 30, 90, 20] * 4
    shp = write_shapefile(frame, tmp_path, "lu")
    report = load_plan(store, "land_use", shp)
    assert report["unknown_codes"] == {}
    assert set(store.read_features("land_use", 1).orig_code) == {"010", "020", "030", "090"}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # GDAL's note on the cut name
def test_class_field_alias_and_option(store, tmp_path):
    # a .dbf keeps 10 bytes of a field name: 用途区类型代码 arrives as 用途区类型
    frame = land_use_frame().rename(columns={"YTQLXDM": "用途区类型代码"})
    assert load_plan(store, "land_use", write_shapefile(frame, tmp_path / "a", "lu"))["class_field"] == "用途区类型"
    frame = land_use_frame().rename(columns={"YTQLXDM": "CODE"})
    shp = write_shapefile(frame, tmp_path / "b", "lu")
    _refused(store, "land_use", shp, "class_field_missing", "CODE")
    assert load_plan(store, "land_use", shp, LoadOptions(class_field="code"))["class_field"] == "CODE"


def test_coverage_overlaps_and_gaps_are_reported(store, tmp_path):
    frame = land_use_frame()
    geoms = list(frame.geometry)
    geoms[5] = shapely.buffer(geoms[5], 0.002, join_style="mitre")  # overlaps its 4 neighbours
    hole_cell = geoms[10]
    geoms[10] = hole_cell.difference(shapely.buffer(hole_cell.centroid, 0.003))  # a gap
    shp = write_shapefile(frame.set_geometry(geoms, crs=4490), tmp_path, "lu")
    report = load_plan(store, "land_use", shp)
    q = report["quality"]
    assert q["checked"]
    # the mitred buffer reaches into all eight neighbours of feature 6
    assert sorted(tuple(o["features"]) for o in q["overlaps"]) == [
        (1, 6), (2, 6), (3, 6), (5, 6), (6, 7), (6, 9), (6, 10), (6, 11)]
    assert len(q["gaps"]) == 1
    assert q["gaps"][0]["area_m2"] == pytest.approx(
        ellipsoidal_area(np.array([shapely.buffer(hole_cell.centroid, 0.003)]))[0], rel=1e-6)


def test_a_duplicated_corner_feature_is_an_overlap(store, tmp_path):
    frame = land_use_frame()
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)  # feature 17 repeats feature 1
    report = load_plan(store, "land_use", write_shapefile(frame, tmp_path, "lu"))
    overlaps = report["quality"]["overlaps"]
    assert [o["features"] for o in overlaps] == [[1, 17]]
    assert overlaps[0]["area_m2"] == pytest.approx(ellipsoidal_area(
        np.array([grid_cells()[0]]))[0], rel=1e-6)
    assert report["quality"]["gaps"] == []


def test_network_lines_get_level_corridor_and_length(store, tmp_path):
    lines = [shapely.LineString([(110.21, 19.51), (110.29, 19.51)]),
             shapely.LineString([(110.21, 19.52), (110.21, 19.58), (110.25, 19.58)])]
    frame = gpd.GeoDataFrame({"BSM": ["P1", "P2"], "DYDJ": ["500kV", "10kV"], "ZT": ["规划", "现状"],
                              "XZQDM": ["469099", "469099"]}, geometry=lines, crs=4490)
    shp = write_shapefile(frame, tmp_path, "power")
    report = load_plan(store, "power", shp)
    stored = store.read_features("power", 1)
    assert list(stored.level) == ["500kV", "10kV"] and list(stored.corridor_m) == [60.0, 10.0]
    geod = pyproj.CRS.from_epsg(4490).get_geod()
    np.testing.assert_allclose(stored.length_m, [geod.geometry_length(g) for g in lines], rtol=1e-9)
    assert report["area_by_class"][0]["code"] == "1303"


def test_shapefile_sidecar_problems(store, tmp_path):
    shp = write_shapefile(land_use_frame(), tmp_path / "a", "lu")
    shp.with_suffix(".dbf").unlink()
    _refused(store, "land_use", shp, "missing_sidecar", ".dbf")

    shp = write_shapefile(land_use_frame(), tmp_path / "b", "lu")
    set_dbf_record_count(shp.with_suffix(".dbf"), 10)
    err = _refused(store, "land_use", shp, "dbf_short")
    assert err.params["records"] == 10 and err.params["shapes"] == 16

    only_dbf = tmp_path / "noshp.zip"
    shp = write_shapefile(land_use_frame(), tmp_path / "c", "lu")
    with zipfile.ZipFile(only_dbf, "w") as zf:
        zf.write(shp.with_suffix(".dbf"), "lu.dbf")
    _refused(store, "land_use", only_dbf, "missing_sidecar", ".shp")


def test_missing_shx_is_rebuilt_and_announced(store, tmp_path):
    shp = write_shapefile(land_use_frame(), tmp_path, "lu")
    shp.with_suffix(".shx").unlink()
    report = load_plan(store, "land_use", shp)
    assert "index_restored" in report["notes"] and report["counts"]["loaded"] == 16
    assert not shp.with_suffix(".shx").exists()  # the user's folder is left alone


def test_deleted_dbf_records_are_skipped_and_reported(store, tmp_path):
    shp = write_shapefile(land_use_frame(), tmp_path, "lu")
    flag_dbf_deleted(shp.with_suffix(".dbf"), [2, 7])
    report = load_plan(store, "land_use", shp)
    assert report["deleted_records"] == [2, 7] and report["counts"]["deleted_records"] == 2
    assert report["counts"]["loaded"] == 14 and "deleted_records_skipped" in report["notes"]
    assert 2 not in set(store.read_features("land_use", 1).feature_no)


@pytest.mark.parametrize("content, key", [
    (b"", "file_empty"), (b"this is not a zip", "not_a_zip"), (b"PK\x03\x04truncated", "not_a_zip")])
def test_broken_files_are_refused(store, tmp_path, content, key):
    path = tmp_path / "plan.zip"
    path.write_bytes(content)
    _refused(store, "land_use", path, key)


def test_zero_features_and_unknown_formats_are_refused(store, tmp_path):
    empty = land_use_frame().iloc[:0]
    gpkg = tmp_path / "empty.gpkg"
    empty.to_file(gpkg, engine="pyogrio")
    _refused(store, "land_use", gpkg, "no_features")
    doc = tmp_path / "plan.docx"
    doc.write_bytes(b"word")
    _refused(store, "land_use", doc, "unsupported_format")


def test_load_report_is_json_serialisable_and_stored_with_the_version(store, tmp_path):
    report = load_plan(store, "land_use", write_shapefile(land_use_frame(), tmp_path, "lu"))
    text = json.dumps(report, ensure_ascii=False)
    assert "EPSG:4490" in text
    stored = store.version("land_use", 1).report
    assert stored["area_by_class"] == report["area_by_class"] and stored["sha256"] == report["sha256"]


def test_worker_processes_give_the_same_plan_as_threads(store, tmp_path, monkeypatch):
    import multiplan.ingest as ingest

    frame = land_use_frame(6)
    geoms = list(frame.geometry)
    geoms[7] = shapely.buffer(geoms[7], 0.001, join_style="mitre")  # overlaps, found across chunks
    shp = write_shapefile(frame.set_geometry(geoms, crs=4490), tmp_path, "lu")
    threads = load_plan(store, "land_use", shp, LoadOptions(chunk_size=7))
    monkeypatch.setattr(ingest, "PROCESS_MIN_FEATURES", 1)
    monkeypatch.setattr(ingest, "WORKERS", 2)
    processes = load_plan(store, "land_use", shp, LoadOptions(chunk_size=7, processes=True))
    for key in ("counts", "area_by_class", "quality", "repairs", "unknown_codes"):
        assert processes[key] == threads[key], key
    assert len(threads["quality"]["overlaps"]) == 8
    a, b = store.read_features("land_use", 1), store.read_features("land_use", 2)
    assert list(a.feature_key) == list(b.feature_key)
    assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=0).all()


@pytest.mark.parametrize("kind", ["shapefile_gbk", "gpkg", "geojson", "shapefile_deleted"])
def test_the_arrow_read_gives_what_the_plain_read_gives(tmp_path, kind):
    from multiplan.io import open_plan_source, read_chunk

    frame = land_use_frame(n=5)
    frame["面积"] = np.arange(len(frame), dtype=float) * 1.5
    frame["序号"] = np.arange(len(frame), dtype=np.int64)
    frame.loc[3, "备注"] = None
    if kind.startswith("shapefile"):
        path = write_shapefile(frame, tmp_path, "lu")
        if kind == "shapefile_deleted":
            flag_dbf_deleted(path.with_suffix(".dbf"), [2, 7])
    else:
        path = tmp_path / f"lu.{kind}"
        frame.to_file(path, engine="pyogrio")
    chunks = []
    for arrow in (True, False):
        src = open_plan_source(path, tmp_path / f"work{arrow}", source_layer=None, encoding=None, crs=None)
        src.arrow_read = arrow
        chunks.append([read_chunk(src, start, 10, lazy=True) for start in (0, 10, 20)])
        assert src.arrow_read == arrow, "the arrow read should suit these files"
    for fast, plain in zip(*chunks, strict=True):
        assert (fast is None) == (plain is None)
        if fast is None:
            continue
        assert fast.geometry is None and fast.wkb_arrow is not None  # made only when needed
        fast.decode()
        assert np.array_equal(fast.fids, plain.fids) and np.array_equal(fast.feature_no, plain.feature_no)
        assert list(fast.wkb) == list(plain.wkb) and shapely.equals(fast.geometry, plain.geometry).all()
        pd.testing.assert_frame_equal(fast.attributes, plain.attributes)
        assert fast.unreadable == plain.unreadable == [] and fast.unclosed == plain.unclosed == []



@pytest.mark.parametrize("n", [0, 1, 999, 50_000, 120_001, 200_000, 2_000_000])
def test_chunk_ranges_cover_every_feature_once_and_end_in_smaller_pieces(n):
    from multiplan.ingest import WORKERS, _ranges

    ranges = _ranges(n, 50_000)
    starts = [s for s, _ in ranges]
    assert starts[0] == 0 and starts == sorted(set(starts))
    for (start, count), (following, _) in zip(ranges, ranges[1:], strict=False):
        assert start + count == following  # no gap, no overlap
    assert ranges[-1][0] + ranges[-1][1] >= max(n, 1) and ranges[-1][1] >= 50_000  # the last one reads to the end
    assert all(count <= 50_000 for _, count in ranges[:-1])
    if n >= 200_000:
        assert max(count for _, count in ranges[-WORKERS * 2:-1]) < 50_000


def test_attribute_json_by_arrow_reads_back_as_pandas_writes_it():
    from multiplan.ingest import _attrs_json, _attrs_json_by_pandas

    frame = pd.DataFrame({"名称": ["a/b", None, 'say "hi" \\ there', "行一\n行二\t\r\b\f", ""],
                          "面积": [1.0, np.nan, 1e20, 0.1, -2.5], "序号": np.arange(5, dtype=np.int64),
                          "比例": [np.inf, 2.5, 1 / 3, -0.0, 7.0], "有效": [True, False, True, False, True],
                          'key "quoted"': list("abcde")})
    fast = [json.loads(row) for row in _attrs_json(frame).to_pylist()]
    slow = [json.loads(row) for row in _attrs_json_by_pandas(frame).to_pylist()]
    assert [list(r) for r in fast] == [list(r) for r in slow]
    for got, want in zip(fast, slow, strict=True):
        for key, value in want.items():
            assert type(got[key]) is type(value), (key, got[key], value)  # 1.0 stays a float
            assert got[key] == pytest.approx(value, rel=1e-9) if isinstance(value, float) else got[key] == value
    # a control character that JSON writes as \u0001: pandas writes the rows
    awkward = pd.DataFrame({"备注": ["bell\x07", "ok"]})
    assert [json.loads(r) for r in _attrs_json(awkward).to_pylist()] == [{"备注": "bell\x07"}, {"备注": "ok"}]
    assert _attrs_json(pd.DataFrame(index=range(2))).to_pylist() == ["{}", "{}"]
    mixed = pd.DataFrame({"值": pd.Series([1, "a"], dtype=object), "日期": pd.to_datetime(["2020-01-02", None])})
    assert [json.loads(r) for r in _attrs_json(mixed).to_pylist()] == [
        json.loads(r) for r in _attrs_json_by_pandas(mixed).to_pylist()]


@pytest.mark.parametrize("bowtie", [False, True])
@pytest.mark.parametrize("kind", ["gpkg", "shapefile", "shapefile_gk"])
def test_the_arrow_path_loads_what_the_general_path_loads(store, tmp_path, monkeypatch, kind, bowtie):
    """Polygon chunks read through Arrow skip making geometries when everything is plain (holes,
    multipolygons and clockwise shells included); a bow-tie sends the chunk the general way. Either way
    the loads agree exactly with the general path's."""
    from multiplan import ingest, io

    frame = land_use_frame(n=6)
    cells = list(frame.geometry)
    cells[1] = cells[1].difference(cells[1].centroid.buffer(0.002))  # a hole
    bx0, by0, bx1, by1 = cells[2].bounds
    cells[2] = shapely.MultiPolygon([shapely.box(bx0, by0, (bx0 + bx1) / 2 - 0.001, by1),
                                     shapely.box((bx0 + bx1) / 2 + 0.001, by0, bx1, by1)])
    cells[3] = shapely.orient_polygons(cells[3], exterior_cw=True)
    x0, y0, x1, y1 = cells[4].bounds
    if bowtie:  # the chunk then takes the general path, which repairs it
        cells[4] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])
    frame = frame.set_geometry(cells)
    if kind == "gpkg":
        path = tmp_path / "lu.gpkg"
        frame.to_file(path, engine="pyogrio")
    else:  # in CGCS2000 lon/lat, or in the Gauss-Kruger zone (CM 111E) that bureaus deliver
        path = write_shapefile(frame, tmp_path, "lu", epsg=4546 if kind == "shapefile_gk" else 4490)
    taken = []
    common = ingest._normalise_read_polygons
    monkeypatch.setattr(ingest, "_normalise_read_polygons", lambda *a: taken.append(common(*a)) or taken[-1])
    fast = load_plan(store, "land_use", path)
    assert (taken[0] is not None) == (not bowtie)  # then the coverage check's reads again: plain reads
    assert all(t is None for t in taken[1:])
    monkeypatch.setattr(io, "_read_arrow", lambda *args, **kwargs: None)
    general = load_plan(store, "land_use", path)
    for key in ("counts", "repairs_by_kind", "repairs", "rejected", "unknown_codes", "area_by_class", "quality"):
        assert fast[key] == general[key], key
    assert fast["repairs_by_kind"].get("invalid_polygon", 0) == bowtie
    assert (fast["repairs_by_kind"].get("ring_orientation", 0) > 0) == (kind == "gpkg")  # shapefiles: GDAL orients
    a, b = store.read_features("land_use", fast["version"]), store.read_features("land_use", general["version"])
    assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=0).all()
    assert a.area_m2.tolist() == b.area_m2.tolist()


def test_geopackage_chunks_are_read_by_fid_range_when_fids_run_without_gaps(tmp_path):
    from multiplan.io import open_plan_source, read_chunks

    frame = land_use_frame(n=6)  # 36 features
    path = tmp_path / "lu.gpkg"
    frame.to_file(path, layer="lu", engine="pyogrio")
    gappy = tmp_path / "gappy.gpkg"
    frame.to_file(gappy, layer="lu", engine="pyogrio")
    with sqlite3.connect(gappy) as con:
        con.execute("DELETE FROM lu WHERE fid = 7")
    for source, expect_range in ((path, True), (gappy, False)):
        src = open_plan_source(source, tmp_path / source.stem)
        assert (src.fid_range is not None) == expect_range
        chunks = list(read_chunks(src, chunk_size=10))
        keys = [k for c in chunks for k in c.attributes["BSM"]]
        want = [k for i, k in enumerate(frame["BSM"]) if not (source == gappy and i == 6)]
        assert keys == want and [len(c.feature_no) for c in chunks][:3] == [10, 10, 10]
        assert [n for c in chunks for n in c.feature_no] == list(range(1, len(want) + 1))


def test_sums_by_key_columns_agree_with_a_pandas_groupby():
    from multiplan.ingest import _sums_by

    rng = np.random.default_rng(0)
    n = 5000
    columns = [pd.Series(rng.choice(["460100", "460200", None], n), dtype=object),
               pd.Series(rng.choice(["01", "0101", None, "07|08"], n), dtype=object),
               pd.Series(rng.choice(["010", "020", None], n), dtype="str"), pd.Series([None] * n, dtype=object)]
    area, length = rng.random(n), rng.random(n)
    got = _sums_by(columns, area, length)
    frame = pd.DataFrame({k: c.astype(object).where(c.notna(), "") for k, c in zip("abcd", columns, strict=True)})
    grouped = frame.assign(area=area, length=length).groupby(list("abcd"))
    sums, sizes = grouped[["area", "length"]].sum(), grouped.size()
    assert set(got) == set(sums.index)
    for key, (a, b, count) in got.items():
        assert a == pytest.approx(sums.loc[key, "area"]) and b == pytest.approx(sums.loc[key, "length"])
        assert count == sizes[key]
