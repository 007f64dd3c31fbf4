"""Quality control of coverage plans: overlaps between features and gaps inside the plan.

In a clean coverage every inner edge is used by exactly two neighbours, once each way (shells run
counter-clockwise). Only the segments where that fails can bound a gap or an overlap, so the check
keeps one 64-bit key per segment while the plan streams past, and looks at real geometry only for
the few features that own unmatched segments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import shapely

from multiplan.crs import RingTable, ellipsoidal_area, wkb_ring_table

# Vertices closer than this (degrees, ~0.1 mm) are the same vertex when matching shared edges.
SNAP_DEG = 1e-9


def _keyed(table: RingTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Key, first vertex (as stored) and ring of every boundary segment, and which rings are walked
    backwards to take the OGC orientation. A key hashes the undirected segment's end points (snapped to
    ``SNAP_DEG``); its low bit is the direction. A hash collision could only hide a finding, never invent
    one. Segments that snap to a point are left out."""
    from multiplan.convexclip import kernel  # its module imports this package's crs

    reverse = table.misoriented_rings()
    keys, vertex = kernel().segment_keys(table.coords, table.ring_off, reverse, SNAP_DEG)
    return keys, vertex, table.coord_ring[vertex], reverse


def _segments(table: RingTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key, start and end of every boundary segment, walked in the OGC orientation."""
    keys, vertex, ring, reverse = _keyed(table)
    forward = ~reverse[ring][:, None]
    start = np.where(forward, table.coords[vertex], table.coords[vertex + 1])
    end = np.where(forward, table.coords[vertex + 1], table.coords[vertex])
    return keys, start, end


def segment_keys(table: RingTable, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys of every boundary segment (see :func:`_keyed`) and the owning feature's position."""
    keys, _, ring, _ = _keyed(table)
    return keys, positions[table.part_geom[table.ring_part[ring]]].astype(np.int32)


def unmatched_keys(key_chunks: list[np.ndarray]) -> np.ndarray:
    """Keys of segments not shared by exactly two features, once each way (sorted, unique).

    Sorted in place, a matched pair is two neighbours with the same end points and opposite
    directions; everything else is unmatched. Memory stays near one copy of the keys.
    """
    keys = np.concatenate(key_chunks) if key_chunks else np.zeros(0, dtype=np.uint64)
    if len(keys) == 0:
        return keys
    keys.sort()
    n = len(keys)
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    hi = keys >> np.uint64(1)
    np.not_equal(hi[1:], hi[:-1], out=new_group[1:])
    del hi
    starts = np.flatnonzero(new_group)
    del new_group
    sizes = np.diff(np.append(starts, n))
    second = np.minimum(starts + 1, n - 1)
    matched = (sizes == 2) & ((keys[starts] & np.uint64(1)) == 0) & ((keys[second] & np.uint64(1)) == 1)
    return np.unique(keys[np.repeat(~matched, sizes)])


def _among(keys: np.ndarray, few: np.ndarray) -> np.ndarray:
    """np.isin for a few keys among millions, by a hash table of the few (isin sorts them all)."""
    return pd.Series(keys, copy=False).isin(few).to_numpy()


def _winding(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """How many features cover each point, from the unmatched directed segments alone.

    Matched segments come in opposite pairs whose winding contributions cancel, so the sum over the
    unmatched ones is the sum over every feature.
    """
    out = np.zeros(len(points), dtype=np.int64)
    for i, (px, py) in enumerate(points):
        y0, y1 = start[:, 1], end[:, 1]
        cross = (end[:, 0] - start[:, 0]) * (py - y0) - (px - start[:, 0]) * (y1 - y0)
        up = (y0 <= py) & (y1 > py) & (cross > 0)
        down = (y1 <= py) & (y0 > py) & (cross < 0)
        out[i] = int(up.sum()) - int(down.sum())
    return out


#: fetch(positions) -> (valid polygons, feature numbers, feature keys) of those features
Fetch = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def coverage_findings(keys: list[np.ndarray], owners: list[np.ndarray], bounds: np.ndarray, fetch: Fetch,
                      min_area_m2: float) -> dict[str, list[dict[str, Any]]]:
    """Overlaps and gaps of a coverage from its segment keys (and owners), chunk by chunk as they came;
    ``fetch`` supplies the few geometries needed.

    ``bounds`` holds (minx, miny, maxx, maxy) per feature position (NaN for features not loaded).
    """
    odd = unmatched_keys(keys)
    suspects = np.unique(np.concatenate([o[_among(k, odd)] for k, o in zip(keys, owners, strict=True)])
                         if keys else np.zeros(0, dtype=np.int64)).astype(np.int64)
    if len(suspects) == 0:
        return {"overlaps": [], "gaps": []}
    geoms, _, _ = fetch(suspects)
    seg_keys, start, end = _segments(wkb_ring_table(shapely.to_wkb(geoms))[0])
    chosen = _among(seg_keys, odd)
    start, end = start[chosen], end[chosen]
    lines = shapely.linestrings(np.stack([start, end], axis=1))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.node(shapely.multilinestrings(lines)))))
    if len(faces) == 0:
        return {"overlaps": [], "gaps": []}
    points = shapely.point_on_surface(faces)
    cover = _winding(shapely.get_coordinates(points), start, end)
    face_area = ellipsoidal_area(faces)
    gaps = [{"area_m2": float(face_area[i]), "point": [round(points[i].x, 7), round(points[i].y, 7)]}
            for i in np.flatnonzero((cover == 0) & (face_area >= min_area_m2))]
    overlaps = _overlaps(faces[cover >= 2], bounds, fetch, min_area_m2)
    gaps.sort(key=lambda g: g["point"])
    return {"overlaps": overlaps, "gaps": gaps}


def _overlaps(faces: np.ndarray, bounds: np.ndarray, fetch: Fetch, min_area_m2: float) -> list[dict[str, Any]]:
    """Measure, pair by pair, the features that meet faces covered two or more times."""
    if len(faces) == 0:
        return []
    # which features cover a face stays a count, not a list: who they are can change across
    # shared edges inside it, so every feature meeting the face is paired up and measured
    candidates = set()
    fb = shapely.bounds(faces)
    with np.errstate(invalid="ignore"):
        for minx, miny, maxx, maxy in fb:
            hit = (bounds[:, 0] <= maxx) & (bounds[:, 2] >= minx) & (bounds[:, 1] <= maxy) & (bounds[:, 3] >= miny)
            candidates.update(np.flatnonzero(hit).tolist())
    positions = np.array(sorted(candidates), dtype=np.int64)
    geoms, numbers, keys = fetch(positions)
    tree = shapely.STRtree(geoms)
    f_idx, g_idx = tree.query(faces, predicate="intersects")
    pairs = set()
    for f in np.unique(f_idx):
        owners = sorted(g_idx[f_idx == f].tolist())
        pairs.update((a, b) for k, a in enumerate(owners) for b in owners[k + 1:])
    found = []
    if pairs:
        left, right = np.array(sorted(pairs)).T
        pieces = shapely.intersection(geoms[left], geoms[right])
        for a, b, piece, area in zip(left, right, pieces, ellipsoidal_area(pieces), strict=True):
            if area >= min_area_m2:
                first, second = sorted([a, b], key=lambda i: numbers[i])
                pt = shapely.point_on_surface(piece)
                found.append({"features": [int(numbers[first]), int(numbers[second])],
                              "keys": [str(keys[first]), str(keys[second])],
                              "area_m2": float(area), "point": [round(pt.x, 7), round(pt.y, 7)]})
    found.sort(key=lambda o: o["features"])
    return found
