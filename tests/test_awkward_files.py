"""Real third-party awkward files (../shared/data/awkward_files, when present): never a crash."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import shapely

from multiplan import config
from multiplan.errors import InputError
from multiplan.ingest import LoadOptions, load_plan
from multiplan.io import open_plan_source, read_chunks
from tests.conftest import SHARED_DATA

pytestmark = [
    pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data/awkward_files is not on this machine"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
WGS84 = pyproj.CRS.from_epsg(4326)


@pytest.fixture(autouse=True)
def _whole_world(monkeypatch):
    # These files lie outside Hainan; widen the region so the other checks can be seen.
    monkeypatch.setattr(config, "REGION_BOUNDS", (-180.0, -90.0, 180.0, 90.0))


def _read(name, **kw):
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp())
    src = open_plan_source(SHARED_DATA / name, tmp, **kw)
    chunks = list(read_chunks(src))
    return src, chunks


@pytest.mark.parametrize("name, layer, options", [
    ("pyshp/polygon.shp", "land_use", {"class_field": "name", "crs": WGS84}),
    ("pyshp/MyPolyZ.shp", "land_use", {"class_field": "NAME", "crs": WGS84}),
    ("pyshp/linez.shp", "power", {"class_field": "name", "crs": WGS84}),
    ("pyshp/linem.shp", "power", {"class_field": "name", "crs": WGS84}),
    ("shapefile-js/export_polylinez.shp", "power", {"class_field": "attr"}),
    ("shapefile-js/ipra_dresden_polygon.shp", "land_use", {"class_field": "NAME"}),
    ("shapefile-js/qgis.zip", "land_use", {"class_field": "FID"}),
])
def test_awkward_files_load_in_two_dimensions(store, name, layer, options):
    report = load_plan(store, layer, SHARED_DATA / name, LoadOptions(**options))
    assert report["counts"]["loaded"] >= 1
    stored = store.read_features(layer, report["version"])
    assert not stored.has_z.any() and stored.is_valid.all()
    if name == "pyshp/polygon.shp":
        assert {r["kind"] for r in report["repairs"]} & {"unclosed_ring", "invalid_polygon"}


def test_zero_length_lines_are_reported_not_dropped(store):
    report = load_plan(store, "power", SHARED_DATA / "shapefile-js/zero-len-line.zip",
                       LoadOptions(class_field="TYPEPIPE"))
    assert report["counts"]["rejected"] >= 1
    assert report["counts"]["read"] == report["counts"]["loaded"] + report["counts"]["rejected"]
    assert all(r["reason"] == "empty" for r in report["rejected"])


@pytest.mark.parametrize("name, layer, key", [
    ("pyshp/multipatch.shp", "land_use", "unsupported_geometry"),
    ("shapefile-js/noshp.zip", "land_use", "missing_sidecar"),
    ("shapefile-js/export_multipointz.shp", "power", "wrong_geometry"),
    ("pyshp/NullTest.shp", "power", "wrong_geometry"),
])
def test_awkward_files_are_refused_clearly(store, name, layer, key):
    with pytest.raises(InputError) as err:
        load_plan(store, layer, SHARED_DATA / name, LoadOptions(crs=WGS84, class_field="name"))
    assert err.value.key == key and SHARED_DATA.joinpath(name).name in str(err.value)
    assert store.versions() == []


def test_corrupt_too_long_loads_or_fails_cleanly(store):
    try:
        report = load_plan(store, "power", SHARED_DATA / "pyshp/corrupt_too_long.shp",
                           LoadOptions(class_field="test", crs=WGS84))
        assert report["counts"]["loaded"] == 10
    except InputError as exc:
        assert "corrupt_too_long" in str(exc)


def test_cpg_codepage_is_honoured():
    src, chunks = _read("shapefile-js/codepage.shp")
    assert src.encoding == "cp1250" and src.encoding_source == "cpg"
    assert "Hněvošický háj" in list(chunks[0].attributes["field"])


def test_utf8_emoji_is_read():
    src, chunks = _read("shapefile-js/utf.shp")
    assert src.encoding == "utf-8"
    assert any(any(ord(ch) > 0xFFFF for ch in str(v)) for v in chunks[0].attributes["field"])


@pytest.mark.parametrize("name, note", [("shapefile-js/htmlcpg.shp", "cpg_unusable"),
                                        ("shapefile-js/htmlprj.shp", "prj_unusable")])
def test_html_sidecars_are_treated_as_unknown_and_announced(name, note):
    src, _ = _read(name)
    assert note in src.notes and "index_restored" in src.notes
    if note == "prj_unusable":
        assert src.crs.guessed


def test_missing_shx_is_restored():
    src, chunks = _read("pyshp/latin1.shp", crs=WGS84)
    assert "index_restored" in src.notes and sum(len(c.feature_no) for c in chunks) >= 1


def test_shapefile_in_a_subfolder_of_the_zip_is_found():
    src, _ = _read("shapefile-js/T8Th4_6n.zip", crs=WGS84)
    assert src.dataset.suffix == ".shp" and src.dataset.parent.name != "unzipped"


def test_missing_prj_takes_the_crs_path():
    try:
        src, _ = _read("shapefile-js/SHP_Exclude.zip")
        assert src.crs.guessed and "prj_missing" in src.notes
    except InputError as exc:
        assert exc.key == "crs_unknown" and "SHP_Exclude.zip" in str(exc)


@pytest.mark.parametrize("name", ["curve.gpkg", "curvepolygon.gpkg", "multisurface.gpkg", "line_zm.gpkg"])
def test_curves_are_linearised_and_zm_dropped(name):
    _, chunks = _read(f"pyogrio_gpkg/{name}")
    geom = chunks[0].geometry[0]
    assert geom is not None and not shapely.has_z(geom)
    assert geom.geom_type in ("LineString", "Polygon", "MultiPolygon", "MultiLineString")


def test_nulls_stay_nulls():
    _, chunks = _read("pyogrio_gpkg/test_gpkg_nulls.gpkg")
    frame = chunks[0].attributes
    last = frame.iloc[-1]
    assert all(v is None or (isinstance(v, float) and np.isnan(v)) for v in last)
    _, chunks = _read("pyshp/NullTest.shp", crs=WGS84)
    assert chunks[0].attributes.isna().any().any()
