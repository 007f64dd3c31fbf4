"""CRS recognition and ellipsoidal areas against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
import shapely

from multiplan.crs import (
    detect_crs,
    ellipsoidal_area,
    geodesic_length,
    parse_crs_option,
    parse_prj_text,
)
from multiplan.errors import CRSError

GEOD = pyproj.CRS.from_epsg(4490).get_geod()


def _karney(geom) -> float:
    """pyproj's geodesic area on the CGCS2000 ellipsoid, shells minus holes, orientation-proof."""
    total = 0.0
    for poly in shapely.get_parts(geom):
        total += abs(GEOD.polygon_area_perimeter(*poly.exterior.xy)[0])
        for ring in poly.interiors:
            total -= abs(GEOD.polygon_area_perimeter(*ring.xy)[0])
    return total


def _analytic_quadrangle(lon0, lat0, lon1, lat1) -> float:
    """Closed-form area of a lon/lat quadrangle on the CGCS2000 ellipsoid."""
    a, f = 6378137.0, 1 / 298.257222101
    e2 = f * (2 - f)
    e = math.sqrt(e2)
    b2 = (a * (1 - f)) ** 2

    def q(phi):
        s = math.sin(math.radians(phi))
        return s / (1 - e2 * s * s) + math.log((1 + e * s) / (1 - e * s)) / (2 * e)
    return b2 / 2 * math.radians(lon1 - lon0) * (q(lat1) - q(lat0))


@pytest.mark.parametrize("size", [0.0005, 0.01, 0.1, 0.5])
def test_quadrangle_area_matches_closed_form(size):
    box = shapely.box(110.3, 19.6, 110.3 + size, 19.6 + size)
    dense = shapely.segmentize(box, size / 200)  # parallels are not great circles: densify them
    expected = _analytic_quadrangle(110.3, 19.6, 110.3 + size, 19.6 + size)
    assert ellipsoidal_area(np.array([dense]))[0] == pytest.approx(expected, rel=1e-6)


def _irregular(rng, min_exp, max_exp, n=150):
    geoms, centres = [], []
    for _ in range(n):
        cx, cy = rng.uniform(108.7, 111.0), rng.uniform(18.2, 20.1)
        size = 10 ** rng.uniform(min_exp, max_exp)
        pts = shapely.points(rng.uniform(cx, cx + size, 40), rng.uniform(cy, cy + size, 40))
        hull = shapely.concave_hull(shapely.multipoints(pts), 0.3)
        hole = shapely.buffer(shapely.centroid(hull), size / 20)
        geoms.append(shapely.segmentize(hull.difference(hole), size / 50))
        centres.append((cx, cy))
    return geoms, centres


def test_area_matches_pyproj_geodesic_area_on_irregular_polygons():
    # From ~100 m to ~10 km across. Below that pyproj's own result drifts (its large edge terms
    # cancel), so tiny parcels are checked against a local equal-area projection instead.
    geoms, _ = _irregular(np.random.default_rng(7), -3, -1)
    ours = ellipsoidal_area(np.array(geoms))
    theirs = np.array([_karney(g) for g in geoms])
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_area_of_small_parcels_matches_a_local_equal_area_projection():
    geoms, centres = _irregular(np.random.default_rng(8), -4.5, -3)
    ours = ellipsoidal_area(np.array(geoms))
    for geom, (cx, cy), area in zip(geoms, centres, ours, strict=True):
        laea = pyproj.CRS.from_proj4(f"+proj=laea +lat_0={cy} +lon_0={cx} +ellps=GRS80")
        t = pyproj.Transformer.from_crs(4490, laea, always_xy=True)
        planar = shapely.transform(geom, lambda c, t=t: np.column_stack(t.transform(c[:, 0], c[:, 1]))).area
        assert area == pytest.approx(planar, rel=1e-8)


def test_area_of_multipolygon_sums_parts_and_non_polygons_are_zero():
    a = shapely.segmentize(shapely.box(110.0, 19.0, 110.01, 19.01), 0.0005)
    b = shapely.segmentize(shapely.box(110.1, 19.0, 110.11, 19.01), 0.0005)
    line = shapely.LineString([(110, 19), (110.1, 19)])
    mixed = shapely.GeometryCollection([a, line, shapely.Point(110, 19)])
    areas = ellipsoidal_area(np.array([shapely.MultiPolygon([a, b]), a, line, None, mixed]))
    assert areas[0] == pytest.approx(2 * areas[1], rel=1e-9)
    assert areas[2] == 0 and areas[3] == 0
    assert areas[4] == pytest.approx(areas[1], rel=1e-12)


@pytest.mark.parametrize("bounds, epsg", [
    ((110.2, 19.5, 110.3, 19.6), 4490),
    ((37_420_000, 2_157_000, 37_440_000, 2_170_000), 4525),
    ((36_480_000, 2_050_000, 36_520_000, 2_080_000), 4524),
    ((420_000, 2_157_000, 440_000, 2_170_000), 4546),
    ((700_000, 2_050_000, 720_000, 2_080_000), 4545),  # west of 109.5E on CM 108E
])
def test_detect_crs_recognises_cgcs2000_zones(bounds, epsg):
    choice = detect_crs(bounds)
    assert choice is not None and choice.guessed
    assert choice.crs.to_epsg() == epsg


@pytest.mark.parametrize("bounds", [
    (1e300, 0, 1e300, 1), (float("nan"), 0, 1, 1), (5_000_000, 0, 5_100_000, 10),
    (45_000_000, 2_157_000, 45_100_000, 2_170_000),  # a zone prefix far from Hainan
    (2.0, 48.0, 2.5, 48.5),  # Paris in degrees is a CRS we know but not a place we plan
])
def test_detect_crs_gives_up_rather_than_guess(bounds):
    choice = detect_crs(bounds)
    if choice is not None:  # degrees are recognised as such; the region check refuses them later
        assert choice.crs.to_epsg() == 4490 and bounds[0] == 2.0
    else:
        assert choice is None


def test_prj_text_with_html_is_not_a_crs():
    assert parse_prj_text("<!DOCTYPE html><html><body>404</body></html>") is None
    assert parse_prj_text("") is None
    assert parse_prj_text(pyproj.CRS.from_epsg(4525).to_wkt("WKT1_ESRI")).to_epsg() == 4525


def test_bad_crs_option_is_a_clear_error():
    assert parse_crs_option("4525").to_epsg() == 4525
    with pytest.raises(CRSError) as err:
        parse_crs_option("EPSG:999999")
    assert "--crs EPSG:999999" in str(err.value)


def test_ring_table_knows_orientation():
    from multiplan.crs import ring_table

    ccw = shapely.Polygon([(110, 19), (110.01, 19), (110.01, 19.01), (110, 19.01)])
    cw = shapely.orient_polygons(ccw, exterior_cw=True)
    clockwise_hole = [(110.004, 19.004), (110.004, 19.006), (110.006, 19.006), (110.006, 19.004)]
    with_hole = shapely.Polygon(ccw.exterior, [clockwise_hole])
    table = ring_table(np.array([ccw, cw, with_hole]))
    assert list(table.misoriented_rings()) == [False, True, False, False]
    assert list(table.geoms_with(table.misoriented_rings())) == [False, True, False]
    assert table.areas()[0] == pytest.approx(table.areas()[1], rel=1e-12)


def test_unmatched_keys_keeps_only_edges_not_shared_once_each_way():
    from multiplan.coverage import unmatched_keys

    keys = np.array([10, 11, 20, 21, 30, 40, 41, 41, 50, 50], dtype=np.uint64)  # low bit: direction
    assert unmatched_keys([keys[:5], keys[5:]]).tolist() == [30, 40, 41, 50]
    assert unmatched_keys([]).tolist() == []


def test_ellipsoidal_areas_in_chunks_equal_one_pass(monkeypatch):
    import numpy as np
    import shapely

    from multiplan import crs

    geoms = np.array([shapely.box(110 + i / 100, 19, 110.005 + i / 100, 19.004) for i in range(7)]
                     + [shapely.Point(110, 19), None], dtype=object)
    whole = crs.ellipsoidal_area(geoms)
    ring_table = crs.ring_table
    tables = []
    monkeypatch.setattr(crs, "ring_table", lambda chunk: tables.append(len(chunk)) or ring_table(chunk))
    monkeypatch.setattr(crs, "AREA_CHUNK_VERTICES", 7)  # a box has 5 vertices: one or two per chunk
    chunked = crs.ellipsoidal_area(geoms)
    assert len(tables) >= 4 and sum(tables) == len(geoms)
    assert len(chunked) == len(geoms) and (chunked == whole).all()
    assert (whole[:7] > 2e5).all() and whole[7] == 0 and whole[8] == 0


def test_geodesic_length_sums_each_part_as_pyproj_measures_it():
    geod = GEOD
    road = shapely.LineString([(110.0, 19.0), (110.1, 19.2), (110.3, 19.1)])
    pieces = shapely.MultiLineString([[(110.0, 19.0), (110.1, 19.0)], [(110.0, 19.5), (110.0, 19.6)]])
    square = shapely.box(110.0, 19.0, 110.1, 19.1)
    geoms = np.array([road, None, shapely.Point(110, 19), shapely.LineString(), pieces,
                      shapely.GeometryCollection([shapely.Point(110.05, 19.05), pieces]), square], dtype=object)
    want = [geod.line_length(*road.xy), 0, 0, 0, sum(geod.line_length(*p.xy) for p in pieces.geoms),
            sum(geod.line_length(*p.xy) for p in pieces.geoms), geod.line_length(*square.exterior.xy)]
    assert geodesic_length(geoms) == pytest.approx(want, rel=1e-12)
