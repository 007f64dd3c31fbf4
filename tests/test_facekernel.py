"""The one map's faces: snap-rounded noding and the faces of the planar graph (multiplan.facekernel),
checked against GEOS's union_all + polygonize on the same polygons."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from multiplan import convexclip
from multiplan.crs import ellipsoidal_area
from multiplan.onemap import NODING_GRID_DEG, _polygonise_geos, polygonise


def _random_plans(seed: int) -> np.ndarray:
    """Two coverages of Voronoi cells and a scatter of overlapping stars and thin rotated boxes near Haikou:
    boundaries cross at every angle, coincide (cells of one coverage) and nearly coincide (shifted copies)."""
    rng = np.random.default_rng(seed)
    frame = shapely.box(110.2, 19.9, 110.3, 20.0)
    cells = []
    for n in (60, 25):
        points = shapely.multipoints(rng.uniform([110.2, 19.9], [110.3, 20.0], (n, 2)))
        cells.append(shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(points)), frame))
    stars = []
    for _ in range(40):
        cx, cy = rng.uniform([110.21, 19.91], [110.29, 19.99])
        k = int(rng.integers(5, 30))
        angle = np.sort(rng.uniform(0, 2 * np.pi, k))
        radius = rng.uniform(0.002, 0.012, k)
        stars.append(shapely.Polygon(np.c_[cx + radius * np.cos(angle), cy + radius * np.sin(angle)]))
    boxes = [shapely.affinity.rotate(shapely.box(x, y, x + 0.03, y + 0.0004), float(a), origin=(x, y))
             for x, y, a in rng.uniform([110.2, 19.9, 0], [110.27, 19.99, 180], (15, 3))]
    nearly = [shapely.affinity.translate(c, xoff=3e-10, yoff=-2e-10) for c in cells[1][:8]]  # within a step
    geoms = np.concatenate([*cells, shapely.make_valid(np.array(stars)), boxes, nearly])
    return geoms[shapely.get_type_id(geoms) >= 3]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_faces_tile_the_union_as_geos_does(seed):
    geoms = _random_plans(seed)
    faces, points, areas = polygonise(geoms)
    reference, _, _ = _polygonise_geos(geoms)
    assert areas == pytest.approx(ellipsoidal_area(faces), rel=1e-9)
    assert shapely.contains_xy(faces, points[:, 0], points[:, 1]).all()
    assert shapely.is_valid(faces).all() and (shapely.get_type_id(faces) == 3).all()
    union = shapely.union_all(geoms, grid_size=NODING_GRID_DEG)
    assert shapely.area(faces).sum() == pytest.approx(shapely.area(union), rel=1e-8)  # rounded apart
    assert shapely.area(faces).sum() == pytest.approx(shapely.area(reference).sum(), rel=1e-8)
    # no two faces overlap
    assert shapely.area(shapely.union_all(faces, grid_size=NODING_GRID_DEG)) == pytest.approx(
        shapely.area(faces).sum(), rel=1e-12)
    # every face of GEOS's (beside slivers) holds one of ours of the same area but for rounding: integer snap
    # rounding rounds crossings of rounded segments, GEOS of the unrounded ones (a boundary moves by up to
    # half a grid step, 0.05 mm), and it may keep a sliver one step wide where boundaries nearly coincide
    theirs, ours = shapely.STRtree(faces).query(shapely.point_on_surface(reference), predicate="within")
    assert np.bincount(theirs, minlength=len(reference)).max() == 1
    sized = shapely.area(reference[theirs]) > 1e-9  # some 12 m2
    same = np.isclose(shapely.area(faces[ours]), shapely.area(reference[theirs]), rtol=1e-4)
    assert same[sized].mean() > 0.99 and len(faces) >= len(reference) > 300
    assert len(faces) <= 1.03 * len(reference)


def test_long_diagonal_edges_among_small_cells_give_geos_faces():
    # zoning polygons with a few long diagonal edges over a fine coverage: the edges span most of the grid
    rng = np.random.default_rng(5)
    points = shapely.multipoints(rng.uniform([110.2, 19.9], [110.3, 20.0], (400, 2)))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(points)), shapely.box(110.2, 19.9, 110.3, 20.0))
    strips = [shapely.affinity.rotate(shapely.box(110.2, y, 110.3, y + 0.002), 37, origin=(110.25, 19.95))
              for y in np.linspace(19.91, 19.99, 30)]
    geoms = np.concatenate([cells, strips])
    faces, _, _ = polygonise(geoms)
    reference, _, _ = _polygonise_geos(geoms)
    assert shapely.is_valid(faces).all() and len(faces) == len(reference)
    assert shapely.area(faces).sum() == pytest.approx(shapely.area(reference).sum(), rel=1e-8)  # rounded apart


def test_islands_become_holes_of_the_face_around_them():
    outer = shapely.box(110.0, 19.0, 110.1, 19.1)
    island = shapely.box(110.02, 19.02, 110.04, 19.04)
    inner = shapely.box(110.025, 19.025, 110.03, 19.03)  # an island within the island
    faces, _, _ = polygonise(np.array([outer, island, inner]))
    assert len(faces) == 3 and shapely.is_valid(faces).all()
    areas = np.sort(shapely.area(faces))
    assert areas == pytest.approx([0.005 ** 2, 0.02 ** 2 - 0.005 ** 2, 0.1 ** 2 - 0.02 ** 2], rel=1e-9)
    assert sorted(shapely.get_num_interior_rings(faces)) == [0, 1, 1]


def test_a_hole_ring_that_touches_itself_is_mended():
    # two squares touching at a corner, inside a bigger one: the big face's hole passes one node twice
    outer = shapely.box(110.0, 19.0, 110.1, 19.1)
    a, b = shapely.box(110.02, 19.02, 110.04, 19.04), shapely.box(110.04, 19.04, 110.06, 19.06)
    faces, _, _ = polygonise(np.array([outer, a, b]))
    assert len(faces) == 3 and shapely.is_valid(faces).all()
    assert shapely.area(faces).sum() == pytest.approx(0.01, rel=1e-12)


def test_what_snapping_collapses_bounds_no_face():
    square = shapely.box(110.0, 19.0, 110.01, 19.01)
    # a spike thinner than the grid step, from a corner of the square: it collapses to a dangling line
    spike = shapely.Polygon([(110.01, 19.01), (110.02, 19.01), (110.015, 19.01 + 2e-10)])
    faces, _, _ = polygonise(np.array([square, spike]))
    assert len(faces) == 1 and faces[0].equals(square)


def test_a_faces_point_lies_in_its_body_not_in_a_spike_of_it():
    # a spike a grid step wide hangs off the square: the line through the middle of the face's height, where
    # GEOS's point_on_surface looks, meets only the spike, where a plan's boundary rounded otherwise may lie
    square = shapely.box(110.0, 19.0, 110.01, 19.01)
    spike = shapely.Polygon([(110.005, 19.0), (110.005 + 5e-10, 18.98), (110.005 + 1e-9, 19.0)])
    faces, points, _ = polygonise(np.array([shapely.union_all([square, spike])]))
    assert len(faces) == 1 and shapely.point_on_surface(faces[0]).y < 19.0
    assert square.contains(shapely.Point(points[0])) and 110.004 < points[0][0] < 110.006


def test_the_just_in_time_kernel_gives_the_compiled_faces(monkeypatch):
    from multiplan import clipkernel

    geoms = _random_plans(7)
    assert convexclip.kernel() is not clipkernel, "the ahead-of-time kernel should be built here"
    want, want_points, want_areas = polygonise(geoms)
    monkeypatch.setattr(convexclip, "_kernel", clipkernel)
    got, points, areas = polygonise(geoms)
    assert shapely.equals_exact(got, want, tolerance=0).all() and np.array_equal(points, want_points)
    # areas to rounding (1e-5 m²): the just-in-time build may fuse the series' multiply-adds for this CPU
    np.testing.assert_allclose(areas, want_areas, rtol=1e-11, atol=1e-5)
