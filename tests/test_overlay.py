"""The pairwise overlay: the shortcuts (containment, clipping, threads) change the speed, never the answer."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from multiplan import overlay


def _wiggly(cx: float, cy: float, radius: float, vertices: int, seed: int) -> shapely.Polygon:
    """A red-line-like polygon: thousands of vertices on a wiggly boundary, a bay, an island hole."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    r = 1 + sum(rng.normal(0, 0.2 / w) * np.sin(w * t + rng.uniform(0, 6.3)) for w in range(1, 60))
    r = radius * np.clip(r + rng.normal(0, 0.3, vertices) * 2 * np.pi / vertices, 0.2, None)
    shell = np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])
    poly = shapely.make_valid(shapely.Polygon(shell))
    return poly.difference(shapely.Point(cx + radius * 0.3, cy).buffer(radius * 0.08))


def _cells(x0: float, y0: float, x1: float, y1: float, n: int, seed: int) -> np.ndarray:
    """Voronoi cells over a box, clipped to it, as land-use plans tessellate."""
    rng = np.random.default_rng(seed)
    points = shapely.multipoints(np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)]))
    cells = shapely.get_parts(shapely.voronoi_polygons(points, extend_to=shapely.box(x0, y0, x1, y1)))
    return shapely.intersection(cells, shapely.box(x0, y0, x1, y1))


def _count_kernel_decisions(monkeypatch) -> list[int]:
    """How many pairs each call of the compiled kernel decided (the kernel itself still runs)."""
    from multiplan import convexclip

    decided: list[int] = []
    real = convexclip.intersect

    def counting(*args, **kwargs):
        pieces, handled, areas = real(*args, **kwargs)
        decided.append(int(handled.sum()))
        return pieces, handled, areas

    monkeypatch.setattr(convexclip, "intersect", counting)
    return decided


@pytest.fixture(scope="module")
def big_and_cells():
    big = np.array([_wiggly(110.0, 19.5, 0.02, 12_000, 1), _wiggly(110.03, 19.52, 0.015, 6_000, 2),
                    shapely.box(109.95, 19.45, 109.97, 19.47)], dtype=object)
    cells = _cells(109.95, 19.45, 110.06, 19.56, 3_000, 3)
    return cells, big


def test_pairs_are_every_intersecting_pair_in_order(big_and_cells):
    cells, big = big_and_cells
    left, right = overlay.intersecting_pairs(cells, big)
    expected = np.argwhere(shapely.intersects(cells[:, None], big[None, :]))
    assert np.array_equal(np.column_stack([left, right]), expected)
    # the other orientation (fewer features on the left) finds the same pairs
    r2, l2 = overlay.intersecting_pairs(big, cells)
    assert sorted(zip(l2.tolist(), r2.tolist(), strict=True)) == sorted(zip(left.tolist(), right.tolist(),
                                                                            strict=True))


@pytest.mark.parametrize("threads", ["1", "2"])
def test_pairs_found_on_the_thread_pool_are_the_same(big_and_cells, monkeypatch, threads):
    monkeypatch.setenv("MULTIPLAN_THREADS", threads)
    cells, _ = big_and_cells
    other = _cells(109.95, 19.45, 110.06, 19.56, 1_000, 4)
    left, right = overlay.intersecting_pairs(cells, other)
    expected = np.argwhere(shapely.intersects(cells[:, None], other[None, :]))
    assert len(expected) > 3_000
    assert np.array_equal(np.column_stack([left, right]), expected)


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("kernel", [False, True], ids=["geos", "kernel"])
def test_intersections_equal_plain_geos_with_every_shortcut_taken(big_and_cells, monkeypatch, threads, kernel):
    monkeypatch.setenv("MULTIPLAN_THREADS", threads)
    monkeypatch.setattr(overlay, "THREADED_MIN_PAIRS", 10)
    monkeypatch.setattr(overlay, "KERNEL_MIN_PAIRS", 10 if kernel else 10**9)
    decided = _count_kernel_decisions(monkeypatch)
    cells, big = big_and_cells
    left, right = overlay.intersecting_pairs(cells, big)
    a, b = cells[left], big[right]
    got, failed = overlay.intersect_pairs(a, b)
    # the kernel decides nearly every cell-against-red-line pair; GEOS does the others
    heavy = (shapely.get_num_coordinates(b) >= overlay.CLIP_MIN_VERTICES).sum()
    assert (sum(decided) > 0.95 * heavy) if kernel else not decided
    want = shapely.intersection(a, b)
    assert not failed.any()
    assert np.allclose(shapely.area(got), shapely.area(want), rtol=1e-9, atol=1e-18)
    # same point sets, not just the same areas
    assert shapely.area(shapely.symmetric_difference(got, want)).max() < 1e-14
    # the shortcuts were taken: cells inside come back as themselves, boundary pairs were clipped
    inside = shapely.contains_properly(b, a) & (shapely.get_num_coordinates(b) >= overlay.CLIP_MIN_VERTICES)
    assert 100 < inside.sum() < len(a) - 100
    assert all(g is c for g, c in zip(got[inside], a[inside], strict=True))


def test_clipping_is_used_and_the_clipped_piece_is_small(big_and_cells):
    cells, big = big_and_cells
    cell = cells[np.flatnonzero(shapely.crosses(cells, big[0].boundary))[0]]
    piece = overlay._clip_around(np.array([big[0]], dtype=object), np.array([cell], dtype=object))[0]
    assert shapely.get_num_coordinates(piece) < shapely.get_num_coordinates(big[0]) / 20
    assert shapely.intersection(cell, piece).equals(shapely.intersection(cell, big[0]))


def test_swapped_sides_and_lines_give_the_same(big_and_cells):
    cells, big = big_and_cells
    left, right = overlay.intersecting_pairs(cells, big)
    got, _ = overlay.intersect_pairs(big[right], cells[left])  # the big side first
    assert np.allclose(shapely.area(got), shapely.area(shapely.intersection(cells[left], big[right])), rtol=1e-9)
    lines = shapely.boundary(cells[left][:50])
    got, _ = overlay.intersect_pairs(lines, big[right][:50])
    assert np.allclose(shapely.length(got), shapely.length(shapely.intersection(lines, big[right][:50])), rtol=1e-9)


def test_a_pair_geos_refuses_is_flagged_not_dropped(monkeypatch):
    real = shapely.intersection

    def refusing(a, b, **kw):  # GEOS's TopologyException on one particular pair, at any precision
        if np.any(shapely.area(np.atleast_1d(a)) == 4.0):
            raise shapely.errors.GEOSException("TopologyException: side location conflict")
        return real(a, b, **kw)

    monkeypatch.setattr(overlay.shapely, "intersection", refusing)
    a = np.array([shapely.box(0, 0, 1, 1), shapely.box(0, 0, 2, 2)], dtype=object)
    b = np.array([shapely.box(0.5, 0.5, 3, 3)] * 2, dtype=object)
    got, failed = overlay.intersect_pairs(a, b)
    assert failed.tolist() == [False, True]
    assert got[0].area == pytest.approx(0.25) and got[1] is None


def test_differences_from_union_equal_difference_with_the_whole_union(big_and_cells):
    cells, big = big_and_cells
    got, failed = overlay.differences_from_union(cells, big)
    want = shapely.difference(cells, shapely.union_all(big))
    assert not failed.any()
    assert np.allclose(shapely.area(got), shapely.area(want), rtol=1e-9, atol=1e-18)
    far = np.flatnonzero(~shapely.intersects(cells, shapely.union_all(big)))
    assert len(far) and all(got[i] is cells[i] for i in far)  # untouched features come back as they are


def test_union_area_tile_by_tile_equals_the_area_of_one_union(big_and_cells, monkeypatch):
    cells, big = big_and_cells
    # overlapping pieces, as patches of one rule are: the cells, the red lines and their intersections
    left, right = overlay.intersecting_pairs(cells, big)
    geoms = np.concatenate([cells[:800], big, shapely.intersection(cells[left], big[right])])
    monkeypatch.setattr(overlay, "TILE_FEATURES", 40)  # a grid of some 7 x 7 tiles
    assert len(overlay.tile_grid(geoms)) > 40
    want = shapely.area(shapely.union_all(geoms))
    assert overlay.union_area(geoms, shapely.area) == pytest.approx(want, rel=1e-9)
    assert overlay.union_area(geoms, shapely.area) < shapely.area(geoms).sum() * 0.9  # overlaps count once
    assert overlay.union_area(geoms[:1], shapely.area) == pytest.approx(shapely.area(geoms[0]))
    assert overlay.union_area(geoms[:0], shapely.area) == 0.0


def test_clipping_to_many_rectangles_at_once_equals_shapely_one_by_one(big_and_cells):
    cells, bigs = big_and_cells
    big = bigs[0]
    bounds = shapely.bounds(cells)
    geoms = np.array([big] * len(cells) + [None, shapely.Polygon()], dtype=object)
    x0, y0, x1, y1 = (np.r_[bounds[:, k], 0.0, 0.0] + (k >= 2) for k in range(4))
    clipped = overlay.clip_to_rects(geoms, x0, y0, x1, y1)
    expected = [shapely.clip_by_rect(g, a, b, c, d) if g is not None else None
                for g, a, b, c, d in zip(geoms, x0, y0, x1, y1, strict=True)]
    assert clipped[-2] is None and clipped[-1].is_empty
    assert all(shapely.equals_exact(c, e, 0) for c, e in zip(clipped[:-2], expected[:-2], strict=True))
    assert sum(not c.is_empty for c in clipped[:-2]) > 10


@pytest.mark.parametrize("kernel", [False, True], ids=["geos", "kernel"])
def test_box_candidates_give_the_exact_pairs_pieces_and_nothing_for_the_others(big_and_cells, monkeypatch, kernel):
    from multiplan.crs import ellipsoidal_area

    monkeypatch.setattr(overlay, "KERNEL_MIN_PAIRS", 10 if kernel else 10**9)
    cells, big = big_and_cells
    left, right = overlay.intersecting_pairs(cells, big)
    cl, cr = overlay.intersecting_pairs(cells, big, exact=False)
    assert len(cl) > len(left) + 100  # boxes meet far more often than the polygons do
    pieces, failed, areas = overlay.measured_intersections(cells[cl], big[cr], ellipsoidal_area, candidates=True)
    assert not failed.any()
    exact_areas = ellipsoidal_area(shapely.intersection(cells[left], big[right]))
    exact = dict(zip(zip(left.tolist(), right.tolist(), strict=True), exact_areas, strict=True))
    for i, j, area, piece in zip(cl.tolist(), cr.tolist(), areas, pieces, strict=True):
        assert area == pytest.approx(exact.get((i, j), 0.0), rel=1e-9, abs=1e-6)
        assert piece.geom_type == "MultiPolygon"


def test_store_shaped_multipolygon_cells_go_to_the_kernel(big_and_cells, monkeypatch):
    from multiplan.crs import ellipsoidal_area

    monkeypatch.setattr(overlay, "KERNEL_MIN_PAIRS", 10)
    decided = _count_kernel_decisions(monkeypatch)
    cells, big = big_and_cells
    cells = np.array([shapely.MultiPolygon([c]) for c in cells], dtype=object)  # as the store keeps them
    left, right = overlay.intersecting_pairs(cells, big[:2], exact=False)
    pieces, failed, areas = overlay.measured_intersections(cells[left], big[:2][right], ellipsoidal_area,
                                                           candidates=True)
    assert sum(decided) > 0.95 * len(left)
    want = ellipsoidal_area(shapely.intersection(cells[left], big[:2][right]))
    assert np.allclose(areas, want, rtol=1e-9, atol=1e-6)
