"""Pairwise polygon overlay, fast where plans are big: intersections and differences feature by feature.

Real red lines and development boundaries carry 5,000 to 50,000 vertices, and overlaying a small
land-use cell with such a polygon costs in proportion to the big one's vertex count. Three things cut
that down, none of which changes the answer:

- a containment shortcut: a cell wholly inside a big polygon (a prepared-geometry test) *is* the
  intersection, no overlay needed;
- for the cells on its boundary, the big polygon is first clipped to a rectangle just larger than the
  cell (linear time, no noding): the overlay then sees only the vertices near the cell. The rectangle
  lies strictly outside the cell, so whatever clipping does along its edges cannot reach the result;
- both cores: the GEOS calls release the GIL, so chunks run on a thread pool.

A pair GEOS refuses is retried on a ~1 mm grid; a pair that still fails is reported, never dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import shapely

# Snap grid for a pair GEOS refuses at full precision (degrees, ~1 mm): the usual digitising tolerance.
SNAP_GRID_DEG = 1e-8
# Clip the bigger polygon of a pair first when it has this many vertices and several times the other's.
CLIP_MIN_VERTICES = 256
CLIP_RATIO = 4
# Below this many pairs the thread pool costs more than it saves.
THREADED_MIN_PAIRS = 2_000
# From this many pairs of a convex cell and a polygon several times its size on, the pairs go to the compiled
# kernel (multiplan.convexclip): site checks and small overlays gain nothing, and never trigger its one-off build.
KERNEL_MIN_PAIRS = 2_000
# Pairs per slice of the kernel's work, at most (but at least 16 slices per thread).
KERNEL_SLICE_PAIRS = 8192
# Features per tile, about, when a whole layer is overlaid at once: bounds the cost and memory of noding.
TILE_FEATURES = 20_000


def threads() -> int:
    """Worker threads for overlays: ``MULTIPLAN_THREADS`` or the CPU count."""
    return max(1, int(os.environ.get("MULTIPLAN_THREADS") or os.cpu_count() or 1))


def robust(op: Callable, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``op`` pair by pair; a pair GEOS cannot compute is retried on a snapped grid, else left as None
    and flagged in the second array."""
    try:
        return op(left, right), np.zeros(len(left), dtype=bool)
    except shapely.errors.GEOSException:
        pass
    out = np.empty(len(left), dtype=object)
    failed = np.zeros(len(left), dtype=bool)
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        try:
            out[i] = op(a, b)
        except shapely.errors.GEOSException:
            try:
                out[i] = op(a, b, grid_size=SNAP_GRID_DEG)
            except shapely.errors.GEOSException:
                failed[i] = True
    return out, failed


def polygonal_parts(geoms: np.ndarray, fresh: np.ndarray | None = None) -> np.ndarray:
    """Each overlay result as a new multipolygon of its polygonal parts (lines and points of a collection
    dropped; empty when nothing is left); None stays None. Vectorised: results come by the hundred thousand.

    ``fresh`` marks multipolygons built for this result alone, which are passed through as they are (taking
    them apart and back copies every vertex). Anything else is copied: an overlay may hand back an input
    feature itself, and a feature shared between threads must not be prepared or related concurrently."""
    geoms = np.asarray(geoms, dtype=object)
    out = np.full(len(geoms), None, dtype=object)
    types = shapely.get_type_id(geoms)  # -1 for None
    done = (types == 6) & (fresh if fresh is not None else False)
    out[done] = geoms[done]
    present = np.flatnonzero((types >= 0) & ~done)
    if not len(present):
        return out
    # two levels of parts: a collection may hold multipolygons
    parts, owner = shapely.get_parts(geoms[present], return_index=True)
    parts, inner = shapely.get_parts(parts, return_index=True)
    owner = owner[inner]
    keep = shapely.get_type_id(parts) == 3
    built = np.full(len(present), None, dtype=object)
    shapely.multipolygons(parts[keep], indices=owner[keep], out=built)
    built[[b is None for b in built]] = shapely.MultiPolygon()
    out[present] = built
    return out


def _in_chunks(work: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], n: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """``work`` over the indices 0..n-1, on the thread pool when that pays; results in index order."""
    out = np.empty(n, dtype=object)
    failed = np.zeros(n, dtype=bool)
    workers = 1 if n < THREADED_MIN_PAIRS else threads()
    if workers == 1:
        chunks = [np.arange(n)]
        results = [work(chunks[0])]
    else:  # interleaved, so expensive pairs (often neighbours) spread over every thread
        chunks = [np.arange(i, n, workers * 4) for i in range(workers * 4)]
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(work, chunks))
    for chunk, (pieces, bad) in zip(chunks, results, strict=True):
        out[chunk] = pieces
        failed[chunk] = bad
    return out, failed


def clip_to_rects(geoms: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """``geoms[k]`` clipped to its own rectangle ``(x0[k], y0[k], x1[k], y1[k])``, as ``shapely.clip_by_rect``.

    shapely's wrapper takes one rectangle per call; the ufunc under it takes arrays, and a Python loop
    over the wrapper cost three times the clipping itself.
    """
    return shapely.lib.clip_by_rect(np.asarray(geoms, dtype=object), *(np.asarray(v, dtype=float)
                                                                      for v in (x0, y0, x1, y1)))


def _clip_around(big: np.ndarray, small: np.ndarray) -> np.ndarray:
    """Each ``big`` clipped to a rectangle a little larger than the matching ``small``'s bounds."""
    bounds = shapely.bounds(small)
    margin = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1]) * 0.01 + 1e-9
    lo, hi = bounds[:, :2] - margin[:, None], bounds[:, 2:] + margin[:, None]
    return clip_to_rects(big, lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1])


def intersecting_pairs(a: np.ndarray, b: np.ndarray, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) with ``a[i]`` intersecting ``b[j]``, ordered by i then j. The tree holds the
    side with more features; the other side's features are prepared once and tested against it.
    ``exact=False`` gives the pairs whose bounding boxes meet: candidates for
    :func:`measured_intersections` with ``candidates=True``, which decides them more cheaply."""
    if not len(a) or not len(b):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    if len(a) >= len(b):
        right, left = tree_query(shapely.STRtree(a), b, "intersects" if exact else None)
    else:
        left, right = tree_query(shapely.STRtree(b), a, "intersects" if exact else None)
    order = np.lexsort((right, left))
    return left[order], right[order]


def tree_query(tree: shapely.STRtree, geoms: np.ndarray, predicate: str | None = "intersects") -> np.ndarray:
    """``tree.query(geoms, predicate=predicate)``, in interleaved chunks on the thread pool when there are
    many: the predicate tests (each query geometry prepared on the fly) release the GIL."""
    workers = threads()
    if predicate is None or workers == 1 or len(geoms) < 4 * workers or len(geoms) + len(tree) < THREADED_MIN_PAIRS:
        return tree.query(geoms, predicate=predicate)
    chunks = [np.arange(i, len(geoms), workers * 4) for i in range(workers * 4)]
    with ThreadPoolExecutor(workers) as pool:
        found = list(pool.map(lambda chunk: tree.query(geoms[chunk], predicate=predicate), chunks))
    return np.concatenate([np.vstack([chunk[pairs[0]], pairs[1]]) for chunk, pairs in zip(chunks, found, strict=True)],
                          axis=1)


def intersect_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a[k] ∩ b[k]`` for every k, exactly as ``shapely.intersection`` gives it (same area to
    rounding), plus which pairs GEOS could not compute. Polygons only on the side that gets clipped."""
    pieces, failed, _ = _intersect_pairs(a, b)
    return pieces, failed


def measured_intersections(a: np.ndarray, b: np.ndarray, measure: Callable[[np.ndarray], np.ndarray],
                           candidates: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`intersect_pairs` as multipolygons of their polygonal parts (None where GEOS failed), with
    their areas: ``measure`` of the pieces, except those the compiled kernel measured as it built them.
    With ``candidates`` the pairs need not intersect (``intersecting_pairs(exact=False)``): the kernel
    finds the disjoint ones as it clips, and the others are tested before GEOS sees them."""
    pieces, failed, areas = _intersect_pairs(a, b, candidates)
    pieces = polygonal_parts(pieces, fresh=~np.isnan(areas))  # what the kernel measured, it built
    todo = np.flatnonzero(np.isnan(areas))
    if len(todo):
        geoms = pieces[todo].copy()
        geoms[[g is None for g in geoms]] = shapely.MultiPolygon()
        areas[todo] = measure(geoms)
    return pieces, failed, areas


def _intersect_pairs(a: np.ndarray, b: np.ndarray, candidates: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces, failures and the areas the kernel measured (NaN elsewhere); see measured_intersections."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    n = len(a)
    out = np.empty(n, dtype=object)
    measured = np.full(n, np.nan)
    if not n:
        return out, np.zeros(0, dtype=bool), measured
    na, nb = shapely.get_num_coordinates(a), shapely.get_num_coordinates(b)
    b_hosts = nb >= na  # the host is the side with more vertices: the one worth preparing and clipping
    host = np.where(b_hosts, b, a)
    guest = np.where(b_hosts, a, b)
    n_host, n_guest = np.maximum(na, nb), np.minimum(na, nb)
    types = shapely.get_type_id(host)
    polygonal = (types == 3) | (types == 6)  # not np.isin: it costs 30 µs a call, and site checks make thousands
    heavy = polygonal & (n_host >= CLIP_MIN_VERTICES)
    decided = np.zeros(n, dtype=bool)
    # convex cells against polygons several times their size: the compiled kernel, GEOS for what it hands
    # back (between cells of a similar size GEOS is as fast); only for many such pairs, as loading it costs
    cand = np.flatnonzero(polygonal & (n_host >= CLIP_RATIO * n_guest))
    if len(cand) >= KERNEL_MIN_PAIRS:
        from multiplan import convexclip  # loaded only for big overlays

        cand = cand[convexclip.suitable_guests(guest[cand])]
        if len(cand):
            workers = threads()
            # slices of at most a few thousand pairs: each holds its hosts' coordinates and its pieces
            # until they are built, and a big overlay's pieces run to gigabytes
            slices = max(workers * 16, len(cand) // KERNEL_SLICE_PAIRS)
            try:
                with ThreadPoolExecutor(workers) as pool:
                    pieces, handled, areas = convexclip.intersect(guest[cand], host[cand], chunks=slices,
                                                                  pool=pool)
            except (ValueError, ArithmeticError, IndexError):  # input the kernel did not foresee: GEOS does all
                handled = np.zeros(len(cand), dtype=bool)
                pieces, areas = np.empty(len(cand), dtype=object), np.full(len(cand), np.nan)
            out[cand[handled]] = pieces[handled]
            measured[cand[handled]] = areas[handled]
            decided[cand[handled]] = True
    # only big overlays prepare their inputs in place: a site check's features are shared by the checks
    # running on other threads, and GEOS builds a prepared geometry's indexes lazily, unlocked
    prepare = shapely.prepare if n >= THREADED_MIN_PAIRS else (lambda geoms: None)
    if candidates:  # the pairs left for GEOS: the disjoint ones have nothing in common
        undecided = np.flatnonzero(~decided)
        prepare(host[undecided])
        disjoint = undecided[~shapely.intersects(host[undecided], guest[undecided])]
        out[disjoint] = shapely.MultiPolygon()
        measured[disjoint] = 0.0
        decided[disjoint] = True
    heavy &= ~decided
    prepare(host[heavy])
    inside = np.zeros(n, dtype=bool)
    inside[heavy] = shapely.contains_properly(host[heavy], guest[heavy])
    out[inside] = guest[inside]
    clip = heavy & ~inside & (n_host >= CLIP_RATIO * n_guest) & (n_guest > 0)  # an empty guest has no bounds
    rest = np.flatnonzero(~inside & ~decided)

    def work(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = rest[chunk]
        hosts = host[k].copy()
        clipped = clip[k]
        hosts[clipped] = _clip_around(hosts[clipped], guest[k][clipped])
        return robust(shapely.intersection, guest[k], hosts)

    pieces, failed_rest = _in_chunks(work, len(rest))
    # pieces whose clipped host GEOS refused are retried on the whole polygon
    retry = np.flatnonzero(failed_rest & clip[rest])
    if len(retry):
        k = rest[retry]
        pieces[retry], failed_rest[retry] = robust(shapely.intersection, guest[k], host[k])
    out[rest] = pieces
    failed = np.zeros(n, dtype=bool)
    failed[rest] = failed_rest
    return out, failed, measured


def differences_from_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a[i]`` minus everything in ``b``, for every i: only the ``b`` near each feature takes part,
    clipped around it when big. Returns the pieces and which features GEOS could not compute."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    left, right = intersecting_pairs(a, b)
    if not len(left):
        return a.copy(), np.zeros(len(a), dtype=bool)
    nb = shapely.get_num_coordinates(b)
    clipped = b[right].copy()
    clip = nb[right] >= CLIP_MIN_VERTICES
    clipped[clip] = _clip_around(b[right][clip], a[left][clip])
    starts = np.flatnonzero(np.r_[True, left[1:] != left[:-1]])
    owners = left[starts]
    single = np.diff(np.r_[starts, len(left)]) == 1
    cover = np.empty(len(owners), dtype=object)
    cover[single] = clipped[starts[single]]
    for g in np.flatnonzero(~single):  # several B features near one A feature: their union
        group = clipped[starts[g]:starts[g + 1] if g + 1 < len(starts) else len(left)]
        cover[g] = _union(group)
    out = a.copy()
    failed = np.zeros(len(a), dtype=bool)
    known = np.array([c is not None for c in cover], dtype=bool)
    pieces, bad = robust(shapely.difference, a[owners[known]], cover[known])
    out[owners[known]] = pieces
    failed[owners[known]] = bad
    out[owners[~known]] = None
    failed[owners[~known]] = True
    return out, failed


def _union(group: np.ndarray) -> shapely.Geometry | None:
    """The union of ``group``, on the snap grid if GEOS refuses it at full precision; None if it still does."""
    for grid in (None, SNAP_GRID_DEG):
        try:
            return shapely.union_all(group, grid_size=grid)
        except shapely.errors.GEOSException:
            continue
    return None


def tile_grid(geoms: np.ndarray, per_tile: int = 0, max_size: float = 0.0) -> np.ndarray:
    """A grid of rectangles over ``geoms``, about ``per_tile`` (default TILE_FEATURES) features each and
    (``max_size``) no wider or higher than that, edges rounded to 1e-6°."""
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    k = max(1, int(np.ceil(np.sqrt(len(geoms) / (per_tile or TILE_FEATURES)))))
    if max_size:
        k = max(k, int(np.ceil((max(x1 - x0, y1 - y0) + 1e-5) / max_size)))
    xs = np.round(np.linspace(x0, x1, k + 1), 6)
    ys = np.round(np.linspace(y0, y1, k + 1), 6)
    xs[0], ys[0], xs[-1], ys[-1] = x0 - 1e-6, y0 - 1e-6, x1 + 1e-6, y1 + 1e-6
    return np.array([shapely.box(xs[i], ys[j], xs[i + 1], ys[j + 1]) for i in range(k) for j in range(k)],
                    dtype=object)


def by_tile(geoms: np.ndarray, work: Callable[..., object], per_tile: int = 0,
            progress: Callable[[int, int], None] | None = None, max_size: float = 0.0,
            indexed: bool = False) -> list:
    """``work`` on the polygons of each tile of a grid over them, cut exactly to the tile (so neighbouring
    tiles agree on their shared edge), tiles on every core; the results in tile order. Overlaying a whole
    province at once costs more than linear time and memory; tile by tile it does not.

    ``max_size``: tiles no wider or higher than this. ``indexed``: ``work`` gets the tile, its polygons and
    the position in ``geoms`` of each of them."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return []
    tiles = tile_grid(geoms, per_tile, max_size)
    tree = shapely.STRtree(geoms)
    bounds = shapely.bounds(geoms)

    def on(tile: shapely.Polygon) -> object:
        idx = tree.query(tile)
        tx0, ty0, tx1, ty1 = tile.bounds
        b = bounds[idx]
        inside = (b[:, 0] >= tx0) & (b[:, 1] >= ty0) & (b[:, 2] <= tx1) & (b[:, 3] <= ty1)
        parts = geoms[idx].copy()
        # what merely touches the tile drops out
        parts[~inside] = polygonal_parts(shapely.intersection(parts[~inside], tile))
        kept = ~shapely.is_empty(parts)
        return work(tile, parts[kept], idx[kept]) if indexed else work(parts[kept])

    out = []
    with ThreadPoolExecutor(threads()) as pool:  # GEOS releases the GIL
        for result in pool.map(on, tiles):
            out.append(result)
            if progress:
                progress(len(out), len(tiles))
    return out


def union_area(geoms: np.ndarray, measure: Callable[[np.ndarray], np.ndarray]) -> float:
    """The area of the union of ``geoms`` (``measure`` gives areas of an array of geometries): the union
    is taken tile by tile, where a single union of a province's patches would take minutes."""
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) <= 1:
        return float(measure(geoms).sum()) if len(geoms) else 0.0
    unions = by_tile(geoms, lambda parts: _union(parts) if len(parts) else shapely.MultiPolygon())
    if any(u is None for u in unions):
        raise shapely.errors.GEOSException("the union of the patches could not be computed")
    return float(measure(np.array(unions, dtype=object)).sum())
