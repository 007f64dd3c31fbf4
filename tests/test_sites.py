"""Reading a site boundary (红线) in every format it arrives in, and refusing what cannot be a site."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import pytest
import shapely

from multiplan.crs import ellipsoidal_area
from multiplan.errors import ArchiveError, CRSError, InputError
from multiplan.i18n import message
from multiplan.sites import SITE_MAX_AREA_M2, SiteInput, read_site, site_from_text

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "sites"

# The sample site's boundary points (EPSG:4525: northing, easting with zone prefix 37), to the millimetre.
POINTS = [
    ("J1", 2193120.770, 37426446.830),
    ("J2", 2193111.530, 37426416.290),
    ("J3", 2193128.550, 37426361.360),
    ("J4", 2193192.140, 37426319.300),
    ("J5", 2193233.880, 37426348.530),
    ("J6", 2193280.460, 37426398.080),
    ("J7", 2193233.310, 37426459.190),
    ("J8", 2193191.030, 37426489.790),
]
NORTH = np.array([p[1] for p in POINTS])
EAST = np.array([p[2] for p in POINTS])
TO_LONLAT = pyproj.Transformer.from_crs(4525, 4490, always_xy=True)
LON, LAT = TO_LONLAT.transform(EAST, NORTH)
CODE = "2024-469099-61-01-000203"


def _ring_text(xs, ys, sep=" ", join=", ") -> str:
    xs, ys = [float(x) for x in xs], [float(y) for y in ys]
    xs, ys = xs + xs[:1], ys + ys[:1]
    return join.join(f"{x!r}{sep}{y!r}" for x, y in zip(xs, ys, strict=True))


def _feature_collection(coords: list, crs: str | None = None, geometry_type: str = "Polygon") -> dict:
    doc: dict = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"项目代码": CODE},
         "geometry": {"type": geometry_type, "coordinates": coords}}]}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return doc


def _closed(xs, ys) -> list:
    pts = [[float(x), float(y)] for x, y in zip(xs, ys, strict=True)]
    return pts + [pts[0]]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _same(a, b, tol: float = 1e-9) -> bool:
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=tol))


def _reference(tmp_path: Path) -> SiteInput:
    doc = _feature_collection([_closed(LON, LAT)])
    return read_site(_write(tmp_path / "ref.geojson", json.dumps(doc)))


def _refused(call, cls: type, key: str, name: str) -> Exception:
    """Assert ``call`` raises ``cls`` with message ``key`` naming ``name`` in both languages."""
    with pytest.raises(cls) as caught:
        call()
    err = caught.value
    assert err.key == key, err.render("en")
    assert name in err.render("zh") and name in err.render("en"), err.render("en")
    return err


# --------------------------------------------------------------------------------------------------
# every format, the same site


def _table_rows(east=EAST, sep=",", close=True, fmt="{:.3f}") -> list[str]:
    rows = [f"{p[0]}{sep}{fmt.format(n)}{sep}{fmt.format(e)}" for p, n, e in zip(POINTS, NORTH, east, strict=True)]
    return rows + rows[:1] if close else rows


def w_geojson_gk(tmp: Path) -> Path:
    doc = _feature_collection([_closed(EAST, NORTH)], crs="urn:ogc:def:crs:EPSG::4525")
    return _write(tmp / "site.json", json.dumps(doc, ensure_ascii=False))


def w_geojson_closed_line(tmp: Path) -> Path:
    doc = _feature_collection(_closed(LON, LAT), geometry_type="LineString")
    return _write(tmp / "line.geojson", json.dumps(doc))


def w_wkt_detected(tmp: Path) -> Path:
    return _write(tmp / "site.wkt", f"POLYGON (({_ring_text(EAST, NORTH)}))\n")


def w_ewkt_txt(tmp: Path) -> Path:
    return _write(tmp / "site.txt", f"SRID=4525;POLYGON Z (({_ring_text(EAST, NORTH, sep=' ', join=' 0, ')} 0))")


def w_shapefile(tmp: Path) -> Path:
    # .dbf field names hold 10 bytes: 项目代码 would be cut in the middle of a character
    outline = shapely.Polygon(np.column_stack([EAST, NORTH]))
    frame = gpd.GeoDataFrame({"XMDM": [CODE], "名称": ["石岭"]}, geometry=[outline], crs=4525)
    pyogrio.write_dataframe(frame, tmp / "site.shp", encoding="UTF-8")
    return tmp / "site.shp"


def w_zipped_shapefile(tmp: Path) -> Path:
    folder = tmp / "shp"
    folder.mkdir()
    w_shapefile(folder)
    with zipfile.ZipFile(tmp / "site.zip", "w") as zf:
        for part in folder.iterdir():
            zf.write(part, f"红线/{part.name}")
    return tmp / "site.zip"


def _kml(lon, lat) -> str:
    coords = _ring_text(lon, lat, sep=",", join=" ")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
            f"<Placemark><name>{CODE}</name><Polygon><outerBoundaryIs><LinearRing><coordinates>{coords}"
            "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></Document></kml>\n")


def w_kml(tmp: Path) -> Path:
    return _write(tmp / "site.kml", _kml(LON, LAT))


def w_kmz(tmp: Path) -> Path:
    with zipfile.ZipFile(tmp / "site.kmz", "w") as zf:
        zf.writestr("doc.kml", _kml(LON, LAT))
    return tmp / "site.kmz"


def _dxf_polyline(xs, ys, *, closed: bool = True, layer: str = "0") -> list[str]:
    lines = ["0", "LWPOLYLINE", "8", layer, "90", str(len(xs)), "70", "1" if closed else "0"]
    for x, y in zip(xs, ys, strict=True):
        lines += ["10", repr(float(x)), "20", repr(float(y))]
    return lines


def _dxf(*entities: list[str]) -> str:
    head = ["0", "SECTION", "2", "HEADER", "9", "$DWGCODEPAGE", "3", "ANSI_936", "0", "ENDSEC",
            "0", "SECTION", "2", "ENTITIES"]
    return "\n".join(head + [line for e in entities for line in e] + ["0", "ENDSEC", "0", "EOF"]) + "\n"


def w_dxf(tmp: Path) -> Path:
    # CAD draws X = easting; a title frame on another layer and an open line must not get in the way
    frame = _dxf_polyline([37426000.0, 37427000.0, 37427000.0, 37426000.0],
                          [2193000.0, 2193000.0, 2193500.0, 2193500.0], layer="图框")
    road = _dxf_polyline([37426300.0, 37426500.0], [2193100.0, 2193100.0], closed=False, layer="道路")
    return _write(tmp / "site.dxf", _dxf(frame, _dxf_polyline(EAST, NORTH, layer="用地红线"), road), "gbk")


def w_table_csv(tmp: Path) -> Path:
    return _write(tmp / "jzd.csv", "\n".join(["点号,X,Y", *_table_rows()]) + "\n", "utf-8-sig")


def w_table_no_prefix(tmp: Path) -> Path:
    # no header, whitespace separated, eastings without the zone prefix (EPSG:4546), ring left open
    return _write(tmp / "jzd.txt", "\n".join(_table_rows(east=EAST - 37e6, sep="  ", close=False)) + "\n")


def w_table_easting_first(tmp: Path) -> Path:
    rows = [f"{p[0]},{e:.3f},{n:.3f}" for p, n, e in zip(POINTS, NORTH, EAST, strict=True)]
    return _write(tmp / "jzd_en.csv", "\n".join(["point,X,Y", *rows]) + "\n")


def w_table_gbk(tmp: Path) -> Path:
    text = "界址点坐标表\n点号\tX坐标(m)\tY坐标(m)\n" + "\n".join(_table_rows(sep="\t")) + "\n"
    return _write(tmp / "界址点.txt", text, "gbk")


WRITERS = [w_geojson_gk, w_geojson_closed_line, w_wkt_detected, w_ewkt_txt, w_shapefile, w_zipped_shapefile,
           w_kml, w_kmz, w_dxf, w_table_csv, w_table_no_prefix, w_table_easting_first, w_table_gbk]
FORMATS = {"w_geojson_gk": "geojson", "w_geojson_closed_line": "geojson", "w_wkt_detected": "wkt",
           "w_ewkt_txt": "wkt", "w_shapefile": "shapefile", "w_zipped_shapefile": "shapefile", "w_kml": "kml",
           "w_kmz": "kml", "w_dxf": "dxf"}


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_every_format_reads_to_the_same_polygon(tmp_path, writer):
    ref = _reference(tmp_path)
    site = read_site(writer(tmp_path))
    assert _same(site.geometry, ref.geometry), (site.geometry.wkt, ref.geometry.wkt)
    assert site.format == FORMATS.get(writer.__name__, "points")
    assert isinstance(site.geometry, shapely.MultiPolygon) and site.geometry.is_valid
    assert not shapely.has_z(site.geometry)
    assert site.n_rings == 1 and not site.repaired
    assert shapely.is_ccw(site.geometry.geoms[0].exterior)


def test_reference_geojson_is_not_a_guess(tmp_path):
    ref = _reference(tmp_path)
    assert ref.crs == "EPSG:4490" and not ref.crs_guessed and ref.notes == ()
    assert ref.attributes == {"项目代码": CODE} and ref.source_name == "ref.geojson"


def test_declared_guessed_and_swapped_are_reported(tmp_path):
    shp = read_site(w_shapefile(tmp_path))
    assert shp.crs == "EPSG:4525" and not shp.crs_guessed and shp.attributes == {"XMDM": CODE, "名称": "石岭"}
    wkt = read_site(w_wkt_detected(tmp_path))
    assert wkt.crs == "EPSG:4525" and wkt.crs_guessed and any("4525" in n for n in wkt.notes)
    no_prefix = read_site(w_table_no_prefix(tmp_path))
    assert no_prefix.crs == "EPSG:4546" and no_prefix.crs_guessed
    swapped = read_site(w_table_easting_first(tmp_path))
    assert message("site_note_axes", first="X", second="Y") in swapped.notes
    dxf = read_site(w_dxf(tmp_path))
    assert any("用地红线" in n for n in dxf.notes)
    zipped = read_site(w_zipped_shapefile(tmp_path))
    assert zipped.source_name == "site.zip"


def test_text_input(tmp_path):
    ref = _reference(tmp_path)
    wkt = site_from_text(f"POLYGON (({_ring_text(LON, LAT)}))")
    assert wkt.source_name == "WKT" and wkt.format == "wkt" and _same(wkt.geometry, ref.geometry)
    feature = json.dumps(_feature_collection([_closed(LON, LAT)])["features"][0])
    geo = site_from_text(feature)
    assert geo.source_name == "GeoJSON" and geo.attributes == {"项目代码": CODE}
    assert _same(geo.geometry, ref.geometry)
    bare = site_from_text(json.dumps({"type": "Polygon", "coordinates": [_closed(EAST, NORTH)]}))
    assert bare.crs == "EPSG:4525" and bare.crs_guessed and _same(bare.geometry, ref.geometry)


# --------------------------------------------------------------------------------------------------
# the 界址点 table


def test_sample_table_reads_with_a_plausible_area():
    site = read_site(SAMPLE / "site_jzd.txt")
    assert site.format == "points" and site.crs == "EPSG:4525" and site.crs_guessed
    area = float(ellipsoidal_area(np.array([site.geometry]))[0])
    planar = shapely.Polygon(np.column_stack([EAST, NORTH])).area  # Gauss-Kruger area: within 0.1 % this near the CM
    assert 1_000 < area < 1_000_000
    assert abs(area - planar) / planar < 1e-3


def test_zone_prefix_or_not_gives_the_same_geometry(tmp_path):
    with_prefix = read_site(w_table_csv(tmp_path))
    without = read_site(w_table_no_prefix(tmp_path))
    assert (with_prefix.crs, without.crs) == ("EPSG:4525", "EPSG:4546")
    assert _same(with_prefix.geometry, without.geometry)


def test_gbk_table_with_chinese_header(tmp_path):
    site = read_site(w_table_gbk(tmp_path))
    assert site.source_name == "界址点.txt" and _same(site.geometry, read_site(w_table_csv(tmp_path)).geometry)


def _axis_tables() -> dict[str, str]:
    rows = list(zip([p[0] for p in POINTS], NORTH, EAST, LON.tolist(), LAT.tolist(), strict=True))
    return {
        "header_y_x": "点号,Y,X\n" + "\n".join(f"{p},{n:.3f},{e:.3f}" for p, n, e, _, _ in rows),
        "lat_lon_header": "点号,纬度,经度\n" + "\n".join(f"{p},{la!r},{lo!r}" for p, _, _, lo, la in rows),
        "lon_lat_no_header": "\n".join(f"{p},{lo!r},{la!r}" for p, _, _, lo, la in rows),
        "doubled_line_ends": "点号,X,Y\r\r\n" + "\r\r\n".join(f"{p},{n:.3f},{e:.3f}" for p, n, e, _, _ in rows),
        "utf16_tabs": "点号\tX\tY\r\n" + "\r\n".join(f"{p}\t{n:.3f}\t{e:.3f}" for p, n, e, _, _ in rows),
        "side_length_column": "\n".join(f"{p} {n:.3f} {e:.3f} 12.5" for p, n, e, _, _ in rows),
    }


@pytest.mark.parametrize("table", _axis_tables(), ids=str)
def test_axis_order_and_layout_variants(tmp_path, table):
    encoding = "utf-16" if table.startswith("utf16") else "utf-8"
    path = tmp_path / f"{table}.txt"
    path.write_bytes(_axis_tables()[table].encode(encoding))
    assert _same(read_site(path).geometry, _reference(tmp_path).geometry, tol=1e-9)


def test_header_decides_when_magnitudes_cannot(tmp_path):
    # near the southern reefs northings have 6 digits like eastings: the header's E/N names decide
    east, north = pyproj.Transformer.from_crs(4490, 4546, always_xy=True).transform([112.0, 112.002, 112.002],
                                                                                   [9.5, 9.5, 9.502])
    rows = "\n".join(f"J{i},{e:.3f},{n:.3f}" for i, (e, n) in enumerate(zip(east, north, strict=True)))
    site = read_site(_write(tmp_path / "reef.csv", "点号,E,N\n" + rows), crs="EPSG:4546")
    assert site.geometry.bounds == pytest.approx((112.0, 9.5, 112.002, 9.502), abs=1e-7)  # mm rounding
    assert site.notes == ()


# A site of two parcels in EPSG:4546 (CM 111E, no prefix): a 200 m square with a 50 m hole, and a 100 m square.
E0, N0 = 430000.0, 2190000.0
OUTER = [(N0, E0), (N0, E0 + 200), (N0 + 200, E0 + 200), (N0 + 200, E0)]
HOLE = [(N0 + 50, E0 + 50), (N0 + 100, E0 + 50), (N0 + 100, E0 + 100), (N0 + 50, E0 + 100)]
PART = [(N0, E0 + 400), (N0, E0 + 500), (N0 + 100, E0 + 500), (N0 + 100, E0 + 400)]
TO_LONLAT_4546 = pyproj.Transformer.from_crs(4546, 4490, always_xy=True)


def _lonlat_ring(ring):
    n, e = np.array(ring).T
    return np.column_stack(TO_LONLAT_4546.transform(e, n))


EXPECTED = shapely.MultiPolygon([
    shapely.Polygon(_lonlat_ring(OUTER), [_lonlat_ring(HOLE)]),
    shapely.Polygon(_lonlat_ring(PART)),
])


def _rows(ring, prefix, ring_no=None, close=False):
    pts = list(ring) + ([ring[0]] if close else [])
    mid = f"{ring_no}," if ring_no is not None else ""
    return [f"{prefix}{i % len(ring) + 1},{mid}{n:.3f},{e:.3f}" for i, (n, e) in enumerate(pts)]


MULTI_RING_TABLES = {
    "ring_column": ["点号,圈号,X,Y", *_rows(OUTER, "A", 1), *_rows(HOLE, "H", 2), *_rows(PART, "B", 3)],
    "first_point_repeated": [*_rows(OUTER, "A", close=True), *_rows(HOLE, "H", close=True),
                             *_rows(PART, "B", close=True)],
    "separator_lines": ["点号,X,Y", *_rows(OUTER, "A"), "", *_rows(HOLE, "H"), "*", *_rows(PART, "B"), "#"],
    "guotu_exchange_file": ["[属性描述]", "格式版本号=1.0", "[地块坐标]", "9,0.0450,1,地块一,面,,,,@",
                            *_rows(OUTER, "J", 1, close=True), *_rows(HOLE, "J", 2, close=True),
                            "5,0.0100,2,地块二,面,,,,@", *_rows(PART, "J", 1, close=True)],
}


@pytest.mark.parametrize("table", MULTI_RING_TABLES, ids=str)
def test_multi_ring_tables(tmp_path, table):
    site = read_site(_write(tmp_path / f"{table}.txt", "\n".join(MULTI_RING_TABLES[table]) + "\n"))
    assert site.n_rings == 3 and len(site.geometry.geoms) == 2
    assert _same(site.geometry, EXPECTED)
    geod_area = pyproj.Geod(ellps="GRS80").geometry_area_perimeter(site.geometry)[0]
    area = float(ellipsoidal_area(np.array([site.geometry]))[0])
    assert geod_area > 0 and abs(area - geod_area) / geod_area < 1e-6
    assert abs(area - (200 * 200 - 50 * 50 + 100 * 100)) / area < 1e-3


def test_dxf_rings_nest_by_size_not_drawing_order(tmp_path):
    def xy(ring):
        n, e = np.array(ring).T
        return e, n
    # the hole drawn first, then the part, then the outer boundary; plus the same outline as a duplicate
    text = _dxf(_dxf_polyline(*xy(HOLE)), _dxf_polyline(*xy(PART)), _dxf_polyline(*xy(OUTER)),
                _dxf_polyline(*xy(OUTER[1:] + OUTER[:1])))
    site = read_site(_write(tmp_path / "plan.dxf", text))
    assert site.crs == "EPSG:4546" and _same(site.geometry, EXPECTED)
    assert message("site_note_duplicate", ring="4", same="3") in site.notes
    assert message("site_note_parts", count=2) in site.notes


# --------------------------------------------------------------------------------------------------
# --crs


def test_crs_option_overrides_a_wrong_declaration(tmp_path):
    doc = _feature_collection([_closed(EAST - 37e6, NORTH)], crs="EPSG:4545")  # really EPSG:4546
    path = _write(tmp_path / "wrong.geojson", json.dumps(doc))
    err = _refused(lambda: read_site(path), InputError, "site_out_of_region", "wrong.geojson")
    assert "--crs" in err.render("zh") and "--crs" in err.render("en") and "X" in err.render("en")
    site = read_site(path, crs="EPSG:4546")
    assert site.crs == "EPSG:4546" and not site.crs_guessed and "--crs" in site.crs_note
    assert _same(site.geometry, _reference(tmp_path).geometry)


def test_crs_option_on_a_table(tmp_path):
    site = read_site(w_table_csv(tmp_path), crs="4525")
    assert site.crs == "EPSG:4525" and not site.crs_guessed and site.notes == ()
    with pytest.raises(CRSError):
        read_site(w_table_csv(tmp_path), crs="EPSG:not-a-crs")


# --------------------------------------------------------------------------------------------------
# repairs and refusals


def _table(tmp: Path, name: str, rows: list[tuple[str, float, float]], header: str = "点号,X,Y") -> Path:
    lines = [header] + [f"{p},{n:.3f},{e:.3f}" for p, n, e in rows]
    return _write(tmp / name, "\n".join(lines) + "\n")


def _square_rows(points: list[tuple[float, float]]) -> list[tuple[str, float, float]]:
    """Rows J1.. of (east offset, north offset) points around (E0, N0), in EPSG:4546."""
    return [(f"J{i + 1}", N0 + dn, E0 + de) for i, (de, dn) in enumerate(points)]


def test_spike_is_repaired_and_announced(tmp_path):
    rows = _square_rows([(0, 0), (100, 0), (100, 50), (150, 50), (100, 50), (100, 100), (0, 100)])
    site = read_site(_table(tmp_path, "spike.csv", rows))
    assert site.repaired and site.geometry.is_valid
    assert any("J" in n for n in site.notes)
    assert abs(float(ellipsoidal_area(np.array([site.geometry]))[0]) - 100 * 100) < 10


def test_bow_tie_is_refused_naming_its_points(tmp_path):
    path = _table(tmp_path, "bowtie.csv", _square_rows([(0, 0), (100, 100), (100, 0), (0, 100)]))
    err = _refused(lambda: read_site(path), InputError, "site_self_intersection", "bowtie.csv")
    assert "J1–J2" in err.render("en") and "J3–J4" in err.render("zh")


def test_repair_that_changes_the_area_is_refused(tmp_path):
    loop = [(0, 0), (100, 0), (100, 100), (20, 100), (20, 20), (80, 20), (80, 120), (0, 120)]
    path = _table(tmp_path, "loop.csv", _square_rows(loop))
    err = _refused(lambda: read_site(path), InputError, "site_repair_area", "loop.csv")
    assert "%" in err.render("en")


def test_missing_empty_and_unsupported_files(tmp_path):
    _refused(lambda: read_site(tmp_path / "nope.geojson"), InputError, "file_not_found", "nope.geojson")
    empty = _write(tmp_path / "empty.csv", "")
    _refused(lambda: read_site(empty), InputError, "file_empty", "empty.csv")
    other = _write(tmp_path / "site.xlsx", "not a site")
    _refused(lambda: read_site(other), InputError, "site_unsupported_format", "site.xlsx")


def test_no_features_or_empty_geometry(tmp_path):
    path = _write(tmp_path / "none.geojson", json.dumps({"type": "FeatureCollection", "features": []}))
    _refused(lambda: read_site(path), InputError, "site_empty", "none.geojson")
    _refused(lambda: site_from_text("POLYGON EMPTY"), InputError, "site_empty", "WKT")
    header_only = _write(tmp_path / "header.csv", "点号,X,Y\n")
    _refused(lambda: read_site(header_only), InputError, "site_table_bad_row", "header.csv")


def test_points_and_open_lines_are_refused(tmp_path):
    point = _write(tmp_path / "pt.geojson", json.dumps({"type": "Point", "coordinates": [110.3, 19.8]}))
    err = _refused(lambda: read_site(point), InputError, "site_wrong_geometry", "pt.geojson")
    assert "Point" in err.render("en")
    line = _write(tmp_path / "line.wkt", f"LINESTRING ({_ring_text(LON, LAT)[:-40]})")
    _refused(lambda: read_site(line), InputError, "site_wrong_geometry", "line.wkt")
    dxf = _write(tmp_path / "open.dxf", _dxf(_dxf_polyline(EAST, NORTH, closed=False)))
    _refused(lambda: read_site(dxf), InputError, "site_dxf_no_ring", "open.dxf")


def test_too_few_distinct_points(tmp_path):
    rows = [("J1", N0, E0), ("J2", N0, E0 + 100), ("J3", N0, E0 + 100)]
    err = _refused(lambda: read_site(_table(tmp_path, "two.csv", rows)), InputError, "site_few_points", "two.csv")
    assert "J1" in err.render("en")
    collinear = _square_rows([(0, 0), (50, 0), (100, 0)])
    _refused(lambda: read_site(_table(tmp_path, "line.csv", collinear)), InputError, "site_ring_no_area", "line.csv")


def test_non_finite_coordinates(tmp_path):
    coords = _closed(LON, LAT)
    coords[2] = [float("nan"), 19.8]
    path = _write(tmp_path / "nan.geojson", json.dumps(_feature_collection([coords])))  # json writes NaN
    _refused(lambda: read_site(path), InputError, "site_bad_coordinates", "nan.geojson")
    rows = ["点号,X,Y", *_table_rows()[:2], "J3,nan,37426361.360", *_table_rows()[3:]]
    table = _write(tmp_path / "nan.csv", "\n".join(rows) + "\n")
    err = _refused(lambda: read_site(table), InputError, "site_table_bad_row", "nan.csv")
    assert "4" in err.render("en")


def test_bad_rows_are_reported_by_line(tmp_path):
    rows = ["点号,X,Y", *_table_rows()[:3], "J4,2193192.140,abc", "J5", *_table_rows()[5:]]
    path = _write(tmp_path / "bad.csv", "\n".join(rows) + "\n")
    err = _refused(lambda: read_site(path), InputError, "site_table_bad_row", "bad.csv")
    assert "5, 6" in err.render("en") and "abc" in err.render("zh")


def test_outside_the_region(tmp_path):
    beijing = _write(tmp_path / "bj.geojson", json.dumps(_feature_collection(
        [[[116.3, 39.9], [116.4, 39.9], [116.4, 40.0], [116.3, 39.9]]])))
    err = _refused(lambda: read_site(beijing), InputError, "site_out_of_region", "bj.geojson")
    assert "--crs" in err.render("zh")


def test_too_large_is_refused(tmp_path):
    rows = _square_rows([(0, 0), (20_000, 0), (20_000, 20_000), (0, 20_000)])
    err = _refused(lambda: read_site(_table(tmp_path, "huge.csv", rows)), InputError, "site_too_large", "huge.csv")
    assert f"{SITE_MAX_AREA_M2 / 1e6:.0f}" in err.render("en")


def test_unknown_crs_is_refused(tmp_path):
    rows = [("J1", 1000.0, 2000.0), ("J2", 1000.0, 2100.0), ("J3", 1100.0, 2100.0)]
    _refused(lambda: read_site(_table(tmp_path, "local.csv", rows)), CRSError, "site_crs_unknown", "local.csv")


def test_unsafe_or_ambiguous_archives(tmp_path):
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../evil.geojson", "{}")
    _refused(lambda: read_site(slip), ArchiveError, "zip_unsafe_path", "slip.zip")
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a.geojson", "{}")
        zf.writestr("b.kml", "<kml/>")
    _refused(lambda: read_site(two), InputError, "site_zip_many", "two.zip")
    none = tmp_path / "none.zip"
    with zipfile.ZipFile(none, "w") as zf:
        zf.writestr("readme.md", "hello")
    _refused(lambda: read_site(none), InputError, "site_zip_no_site", "none.zip")
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("site.geojson", '{"type": "Polygon", "coordinates": [[[110.3, 19.8]')
    _refused(lambda: read_site(broken), InputError, "site_text_unreadable", "broken.zip")


def test_unreadable_text_and_encoding(tmp_path):
    _refused(lambda: site_from_text("POLYGON ((1 2, 3"), InputError, "site_text_unreadable", "WKT")
    _refused(lambda: site_from_text('{"type": "Polygon", "coordinates": 5'), InputError,
             "site_text_unreadable", "GeoJSON")
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"J1,\x80\x80,\xff\xff\n")
    _refused(lambda: read_site(garbage), InputError, "site_encoding", "garbage.csv")
