"""The loader's compiled WKB pass (multiplan.wkbkernel): ring tables, EWKB and segment keys from WKB, checked
against shapely's reading and writing of the same geometries."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from multiplan import convexclip
from multiplan.coverage import segment_keys
from multiplan.crs import ring_table, wkb_ring_table


def _plans() -> np.ndarray:
    rng = np.random.default_rng(3)
    pts = rng.uniform([110.0, 19.5], [110.2, 19.7], (60, 2))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=shapely.box(110, 19.5, 110.2, 19.7)))
    cells = shapely.intersection(cells, shapely.box(110, 19.5, 110.2, 19.7))
    cells = shapely.segmentize(cells, 0.01)
    cells[::3] = shapely.orient_polygons(cells[::3], exterior_cw=True)  # some shells clockwise
    holed = shapely.Polygon([(110, 19), (110.1, 19), (110.1, 19.1), (110, 19.1)],
                            [[(110.02, 19.02), (110.02, 19.05), (110.05, 19.05), (110.02, 19.02)]])
    multi = shapely.MultiPolygon([shapely.box(110, 19, 110.01, 19.01), holed.buffer(0).difference(shapely.box(110, 19, 110.01, 19.01))])
    return np.concatenate([cells, [holed, multi, shapely.Polygon(), shapely.MultiPolygon()]])


@pytest.mark.parametrize("layout", [{}, {"byte_order": 0}, {"output_dimension": 3}, {"output_dimension": 4},
                                    {"flavor": "iso", "output_dimension": 3}, {"include_srid": True}])
def test_the_ring_table_from_wkb_is_shapelys(layout):
    geoms = _plans()
    source = shapely.set_srid(geoms, 4545) if layout.get("include_srid") else geoms
    if layout.get("output_dimension", 2) >= 3:
        source = shapely.force_3d(source, 5.0)
        if layout["output_dimension"] == 4:  # shapely writes XYZM only from geometries that have M
            wkt = [w.replace(" Z ", " ZM ").replace(" 5,", " 5 7,").replace(" 5)", " 5 7)")
                   for w in shapely.to_wkt(source, rounding_precision=-1)]
            source = shapely.from_wkt(wkt)
            assert shapely.has_m(source[0])
    table, unreadable = wkb_ring_table(shapely.to_wkb(source, **layout))
    want = ring_table(geoms)
    assert not unreadable.any()
    for name in ("coords", "coord_ring", "ring_part", "part_geom", "ring_is_shell", "ring_off", "part_off", "geom_off"):
        assert np.array_equal(getattr(table, name), getattr(want, name)), name
    np.testing.assert_allclose(table.ring_excess, want.ring_excess, rtol=1e-12, atol=1e-20)
    np.testing.assert_allclose(table.areas(), want.areas(), rtol=1e-12)


def test_what_is_not_a_polygon_or_is_cut_short_is_flagged_not_read():
    square = shapely.to_wkb(shapely.box(110, 19, 110.1, 19.1))
    items = np.array([shapely.to_wkb(shapely.Point(110, 19)), square[:-7], square, None,
                      shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)])), b"\x07junk"], dtype=object)
    table, unreadable = wkb_ring_table(items)
    assert unreadable.tolist() == [True, True, False, True, True, True]
    assert table.geom_off.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert table.areas()[2] == pytest.approx(ring_table(np.array([shapely.box(110, 19, 110.1, 19.1)])).areas()[0])


def test_oriented_ewkb_is_the_same_multipolygon_shells_counter_clockwise_with_srid():
    geoms = _plans()
    table, _ = wkb_ring_table(shapely.to_wkb(geoms))
    back = shapely.from_wkb(table.oriented_ewkb().to_numpy(zero_copy_only=False))
    assert (shapely.get_srid(back) == 4490).all()
    assert (shapely.get_type_id(back) == 6).all()
    assert shapely.equals(back[:-2], geoms[:-2]).all()
    assert shapely.is_empty(back[-2:]).all()
    parts = shapely.get_parts(back[:-2])
    assert shapely.is_ccw(shapely.get_exterior_ring(parts)).all()
    holes = shapely.get_interior_ring(parts, 0)
    assert not shapely.is_ccw(holes[~shapely.is_missing(holes)]).any()


def test_segment_keys_pair_up_across_shared_edges_whatever_the_orientation():
    geoms = _plans()[:-4]  # the Voronoi coverage
    table, _ = wkb_ring_table(shapely.to_wkb(geoms))
    keys, owner = segment_keys(table, np.arange(len(geoms)))
    assert len(keys) == shapely.get_num_coordinates(geoms).sum() - len(geoms)
    # inside the coverage every edge comes twice, once each way; only the frame's edges stay single
    hi, count = np.unique(keys >> np.uint64(1), return_counts=True)
    frame = shapely.get_coordinates(shapely.boundary(shapely.union_all(geoms)))
    assert (count <= 2).all() and (count == 1).sum() == len(frame) - 1
    pairs = np.sort(keys)[np.isin(np.sort(keys) >> np.uint64(1), hi[count == 2])]
    assert np.array_equal(pairs[::2] & np.uint64(1), np.zeros(len(pairs) // 2, np.uint64))
    assert np.array_equal(pairs[1::2] & np.uint64(1), np.ones(len(pairs) // 2, np.uint64))


def test_the_just_in_time_kernel_reads_as_the_compiled_one(monkeypatch):
    from multiplan import clipkernel

    wkb = shapely.to_wkb(_plans(), byte_order=0)
    assert convexclip.kernel() is not clipkernel, "the ahead-of-time kernel should be built here"
    want, _ = wkb_ring_table(wkb)
    want_ewkb = want.oriented_ewkb()
    monkeypatch.setattr(convexclip, "_kernel", clipkernel)
    got, _ = wkb_ring_table(wkb)
    assert np.array_equal(got.coords, want.coords) and got.oriented_ewkb().equals(want_ewkb)
    np.testing.assert_allclose(got.areas(), want.areas(), rtol=1e-11, atol=1e-5)  # multiply-adds may be fused


def test_certainly_valid_never_vouches_for_an_invalid_polygon():
    rng = np.random.default_rng(5)
    rings = []
    for k in range(6000):  # random rings: many self-intersect; on a small integer grid many touch or run back
        n = int(rng.integers(3, 14))
        pts = rng.integers(0, 5, (n, 2)).astype(float) if k % 2 else rng.uniform(0, 1, (n, 2))
        rings.append(shapely.Polygon(np.vstack([pts, pts[:1]])))
    cells = _plans()[:-4]  # valid, with collinear vertices along every edge
    geoms = np.concatenate([np.array(rings), cells])
    table, _ = wkb_ring_table(shapely.to_wkb(geoms))
    vouched = convexclip.kernel().certainly_valid(table.coords, table.ring_off, table.part_off, table.geom_off)
    valid = shapely.is_valid(geoms)
    assert not (vouched & ~valid).any()
    assert vouched[-len(cells):].all(), "plain valid cells should not need GEOS"
    assert 0.1 < valid[:len(rings)].mean() < 0.9 and vouched[:len(rings)].sum() > 0.5 * valid[:len(rings)].sum()


def test_certainly_valid_leaves_holes_parts_and_near_cases_to_geos():
    holed = _plans()[-4]
    # a corner on the first edge in decimal, not quite in binary: too close to call
    sliver = shapely.Polygon([(110, 19), (110.3, 19.3), (110.4, 19.0), (110.1, 19.1), (110, 19)])
    spike = shapely.Polygon([(0, 0), (2, 0), (1, 0), (1, 1), (0, 0)])  # runs back on itself: invalid
    square = shapely.box(0, 0, 1, 1)
    geoms = np.array([holed, shapely.MultiPolygon([square, shapely.box(2, 2, 3, 3)]), sliver, spike, square,
                      shapely.MultiPolygon([square])])
    table, _ = wkb_ring_table(shapely.to_wkb(geoms))
    vouched = convexclip.kernel().certainly_valid(table.coords, table.ring_off, table.part_off, table.geom_off)
    assert vouched.tolist() == [False, False, False, False, True, True]
