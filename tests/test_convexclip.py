"""The compiled convex-window kernel: GEOS's answer or no answer, never a different one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import shapely

from multiplan import convexclip


def _convex(rng: np.random.Generator, cx: float, cy: float, radius: float) -> shapely.Polygon:
    """A random convex polygon, some edges densified with collinear vertices as Voronoi cells come."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 10)))
    corners = np.column_stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)])
    hull = shapely.convex_hull(shapely.multipoints(corners))
    if rng.random() < 0.5:
        hull = shapely.segmentize(hull, radius * 0.7)
    return hull


def _hosts() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    r = 4 * (1 + 0.4 * np.sin(7 * t) + 0.1 * np.sin(31 * t))
    star = shapely.Polygon(np.column_stack([5 + r * np.cos(t), 5 + r * np.sin(t)]))
    square_with_hole = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(4, 4), (6, 4), (6, 6), (4, 6)]])
    # an island inside a hole, and a second part
    nested = shapely.MultiPolygon([square_with_hole, shapely.box(4.5, 4.5, 5.5, 5.5), shapely.box(11, 0, 12, 10)])
    clockwise = shapely.Polygon(star.exterior.coords[::-1])
    return np.array([star, square_with_hole, nested, clockwise], dtype=object)


def test_random_windows_agree_with_geos():
    rng = np.random.default_rng(7)
    hosts = _hosts()
    guests, pair_hosts = [], []
    for _ in range(4000):
        radius = rng.choice([0.05, 0.5, 2.0, 8.0])
        guests.append(_convex(rng, *rng.uniform(-1, 13, 2), radius))
        pair_hosts.append(hosts[rng.integers(len(hosts))])
    guests, pair_hosts = np.array(guests, dtype=object), np.array(pair_hosts, dtype=object)
    assert convexclip.suitable_guests(guests).all()
    got, handled, _ = convexclip.intersect(guests, pair_hosts)
    assert handled.mean() > 0.99
    want = shapely.intersection(guests[handled], pair_hosts[handled])
    got = got[handled]
    assert shapely.is_valid(got).all()
    assert np.allclose(shapely.area(got), shapely.area(want), rtol=1e-9, atol=1e-15)
    assert shapely.area(shapely.symmetric_difference(got, want)).max() < 1e-12
    # every kind of outcome was met: new pieces, guests wholly inside, nothing in common
    inside = np.array([g is h for g, h in zip(got, guests[handled], strict=True)])
    empty = shapely.is_empty(got)
    assert inside.sum() > 100 and empty.sum() > 100 and (~inside & ~empty).sum() > 1000


def test_a_window_inside_the_host_keeps_the_host_holes_and_islands_inside_it():
    host = _hosts()[2]
    window = shapely.Polygon([(3, 3), (7, 3), (7, 7), (3, 7)])
    got, handled, _ = convexclip.intersect(np.array([window], dtype=object), np.array([host], dtype=object))
    assert handled.all()
    assert shapely.equals(got[0], shapely.intersection(window, host))
    assert got[0].area == pytest.approx(16 - 4 + 1)
    assert len(got[0].geoms) == 2  # the window with its hole, and the island


@pytest.mark.parametrize("window", [
    shapely.Polygon([(0, 2), (3, 2), (3, 5), (0, 5)]),          # an edge along the host's boundary
    shapely.Polygon([(10, 5), (12, 3), (12, 7)]),               # a corner on the host's boundary
    shapely.Polygon([(4, 3), (5, 3), (5, 5), (4, 5)]),          # the host hole's corner on the window's edge
], ids=["shared-edge", "corner-on-boundary", "vertex-on-edge"])
def test_touching_cases_are_handed_back_to_geos(window):
    host = _hosts()[1]
    got, handled, _ = convexclip.intersect(np.array([window], dtype=object), np.array([host], dtype=object))
    assert not handled[0] and got[0] is None


def test_non_convex_and_holed_guests_are_not_taken():
    l_shape = shapely.Polygon([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)])
    holed = shapely.Polygon([(0, 0), (3, 0), (3, 3), (0, 3)], [[(1, 1), (2, 1), (2, 2), (1, 2)]])
    two_parts = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)])
    stored = shapely.MultiPolygon([shapely.box(0, 0, 1, 1)])  # plans are stored as multipolygons
    guests = np.array([l_shape, holed, two_parts, shapely.box(0, 0, 1, 1), stored], dtype=object)
    assert convexclip.suitable_guests(guests).tolist() == [False, False, False, True, True]
    got, handled, _ = convexclip.intersect(guests[4:], np.array([shapely.box(0.5, 0.5, 3, 3)], dtype=object))
    assert handled[0] and shapely.equals(got[0], shapely.box(0.5, 0.5, 1, 1))
    got, handled, _ = convexclip.intersect(guests[:1], np.array([_hosts()[0]], dtype=object))
    assert not handled[0]  # the kernel itself refuses a concave window too


def test_the_kernel_measures_its_pieces_as_ellipsoidal_area_does():
    from multiplan.crs import ellipsoidal_area

    rng = np.random.default_rng(3)
    t = np.linspace(0, 2 * np.pi, 3000, endpoint=False)
    r = 0.05 * (1 + 0.3 * np.sin(9 * t) + 0.05 * np.sin(57 * t))
    red_line = shapely.Polygon(np.column_stack([110.3 + r * np.cos(t), 19.6 + r * np.sin(t)]),
                               [shapely.Point(110.3, 19.6).buffer(0.01).exterior.coords[::-1]])
    cells = np.array([_convex(rng, 110.3 + dx, 19.6 + dy, 0.01) for dx, dy in rng.uniform(-0.07, 0.07, (500, 2))],
                     dtype=object)
    got, handled, areas = convexclip.intersect(cells, np.full(len(cells), red_line, dtype=object))
    built = handled & ~np.isnan(areas)
    assert built.sum() > 100
    assert np.allclose(areas[built], ellipsoidal_area(got[built]), rtol=1e-12, atol=1e-6)
    # cells wholly inside come back as themselves, unmeasured
    inside = handled & np.array([g is c for g, c in zip(got, cells, strict=True)])
    assert inside.sum() > 10 and np.isnan(areas[inside]).all()


def _agrees_or_declines(guests: list, hosts: list) -> np.ndarray:
    """The kernel's answers where it gives one: valid, and GEOS's point set. Returns which it gave."""
    guests = np.array([shapely.from_wkt(g) if isinstance(g, str) else g for g in guests], dtype=object)
    hosts = np.array([shapely.from_wkt(h) if isinstance(h, str) else h for h in hosts], dtype=object)
    got, handled, _ = convexclip.intersect(guests, hosts)
    for guest, host, piece in zip(guests[handled], hosts[handled], got[handled], strict=True):
        assert shapely.is_valid(piece), (guest.wkt, host.wkt, shapely.is_valid_reason(piece))
        want = shapely.intersection(guest, host)
        assert shapely.area(shapely.symmetric_difference(piece, want)) <= 1e-9 * guest.area, (guest.wkt, host.wkt)
    return handled


@pytest.mark.parametrize("guest, host", [
    # a hole touching its shell at a point inside the window (what make_valid makes of an ESRI inverted ring)
    ("POLYGON ((2 0.5, 5 0.5, 5 3.5, 2 3.5, 2 0.5))", "POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0), (4 2, 1 1, 1 3, 4 2))"),
    # two holes touching each other
    ("POLYGON ((4 1, 6 1, 6 9, 4 9, 4 1))",
     "POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (5 5, 3 2, 3 8, 5 5), (5 5, 7 8, 7 2, 5 5))"),
    # holes cutting the interior in two
    ("POLYGON ((6 2, 12 2, 12 8, 6 8, 6 2))",
     "POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (8 4, 10 5, 8 6, 8 4), (3 3, 3 5, 8 4, 3 3))"),
    # a hole whose first vertex lies on an island's boundary
    ("POLYGON ((-10 -10, 10 -10, 10 10, -10 10, -10 -10))",
     "MULTIPOLYGON (((-5 -5, 5 -5, 5 5, -5 5, -5 -5), (-3 0, -3 -4, 4 -4, 4 4, -3 4, -3 0)), "
     "((-3 0, 0 -2, 2 0, 0 2, -3 0)))"),
    # a repeated vertex near the window
    ("POLYGON ((0 0, 1 0, 0 1, 0 0))", "POLYGON ((0.8 0.8, 0.8 0.8, 3 0.8, 3 3, 0.8 3, 0.8 0.8))"),
    # windows a metre across, far from 0,0: the tolerance is never below the coordinates' rounding
    ("POLYGON ((110.2999918004233 19.599994275858837, 110.2999919217732 19.599994340096263, "
     "110.30000695131561 19.60000478767289, 110.30000707496175 19.600004877020876, "
     "110.30000777982292 19.600005469217496, 110.30000649935401 19.60000461122099, "
     "110.29999732717727 19.599998249535272, 110.29999208594147 19.599994507507812, "
     "110.2999918004233 19.599994275858837))",
     "POLYGON ((110.29999260947163 19.600003608388803, 110.29999194318243 19.599994391683325, "
     "110.29999115221617 19.59999938736961, 110.29999260947163 19.600003608388803))"),
    ("POLYGON ((110.30000098152622 19.60000016672252, 110.30000018537169 19.600000041265094, "
     "110.30000061904795 19.600000096646784, 110.30000098152622 19.60000016672252))",
     "POLYGON ((110.30000098152622 19.600000166722534, 110.3000011439283 19.600000639613185, "
     "110.30000060117054 19.59999984217739, 110.30000098152622 19.600000166722534))"),
], ids=["hole-touches-shell", "holes-touch", "interior-cut", "hole-start-on-island", "repeated-vertex",
        "metre-window", "sub-metre-window"])
def test_touching_rings_and_tiny_windows_are_right_or_handed_back(guest, host):
    _agrees_or_declines([guest], [host])


def test_hosts_made_of_touching_cells_are_right_or_handed_back():
    rng = np.random.default_rng(11)
    guests, hosts = [], []
    for _ in range(300):  # unions of grid cells: holes and parts touching at corners
        cells = [shapely.box(i, j, i + 1, j + 1) for i in range(6) for j in range(6) if rng.random() < 0.55]
        host = shapely.union_all(cells)
        if host.is_empty:
            continue
        guests.append(_convex(rng, *rng.uniform(0.5, 5.5, 2), rng.uniform(0.7, 3)))
        hosts.append(host)
    handled = _agrees_or_declines(guests, hosts)
    assert handled.mean() > 0.3


def test_empty_guests_are_not_taken_and_do_not_shift_the_others():
    guests = np.array([shapely.Polygon(), shapely.box(0.2, 0.2, 0.8, 0.8), shapely.Polygon()], dtype=object)
    assert convexclip.suitable_guests(guests).tolist() == [False, True, False]
    hosts = np.full(3, shapely.box(0, 0, 0.5, 0.5), dtype=object)
    got, handled, _ = convexclip.intersect(guests, hosts)
    assert handled.tolist() == [False, True, False]
    assert shapely.equals(got[1], shapely.box(0.2, 0.2, 0.5, 0.5))


def _random_pairs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hosts = _hosts()
    guests = [_convex(rng, *rng.uniform(-1, 13, 2), rng.choice([0.05, 0.5, 2.0])) for _ in range(n)]
    return np.array(guests, dtype=object), hosts[rng.integers(len(hosts), size=n)]


def test_the_kernel_runs_compiled_ahead_of_time_without_numba():
    script = """
import sys, numpy as np, shapely
from multiplan import convexclip
guests = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0.5, 3, 3)], dtype=object)
hosts = np.array([shapely.box(0.5, -1, 2, 2)] * 2, dtype=object)
pieces, handled, areas = convexclip.intersect(guests, hosts)
print(convexclip.kernel().__name__, "numba" in sys.modules, handled.all(), round(shapely.area(pieces).sum(), 9))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "MULTIPLAN_KERNEL"})
    assert done.returncode == 0, done.stderr
    name, numba_loaded, handled, area = done.stdout.split()
    assert name.startswith("clipkernel_") and numba_loaded == "False" and handled == "True"
    assert float(area) == 0.5 * 1 + 1 * 1.5


def test_the_just_in_time_kernel_gives_the_compiled_kernels_answers(monkeypatch):
    from multiplan import clipkernel

    guests, hosts = _random_pairs(11, 800)
    compiled = convexclip.kernel()
    assert compiled is not clipkernel, "the ahead-of-time kernel should be built here"
    want, want_handled, want_areas = convexclip.intersect(guests, hosts)
    monkeypatch.setattr(convexclip, "_kernel", clipkernel)
    got, handled, areas = convexclip.intersect(guests, hosts)
    assert (handled == want_handled).all() and handled.mean() > 0.99
    assert shapely.equals_exact(got[handled], want[handled], tolerance=0).all()
    # areas to rounding (1e-5 m²): the just-in-time build may fuse the series' multiply-adds for this CPU
    np.testing.assert_allclose(areas, want_areas, rtol=1e-11, atol=1e-5, equal_nan=True)


def test_the_compiled_kernel_lets_other_threads_run():
    # three million small squares: the call lasts a good fraction of a second
    n = 3_000_000
    square = np.array([[110.0, 19.0], [110.001, 19.0], [110.001, 19.001], [110.0, 19.001], [110.0, 19.0]])
    xy = np.tile(square, (n, 1))
    offsets = np.arange(0, 5 * n + 1, 5, dtype=np.int64)
    counts = np.arange(n + 1, dtype=np.int64)
    kernel = convexclip.kernel()
    done = threading.Event()
    seconds = []

    def measure():
        start = time.perf_counter()
        kernel.ragged_areas(xy, offsets, counts, counts)
        seconds.append(time.perf_counter() - start)
        done.set()

    worker = threading.Thread(target=measure)
    # this thread notes the time every millisecond or so: a kernel holding the GIL stops it for the whole call
    last, longest_gap = time.perf_counter(), 0.0
    worker.start()
    while True:
        time.sleep(0.001)
        now = time.perf_counter()
        longest_gap, last = max(longest_gap, now - last), now
        if done.is_set():
            break
    worker.join()
    assert seconds[0] > 0.2
    assert longest_gap < seconds[0] / 2, "the kernel held the GIL while it ran"
