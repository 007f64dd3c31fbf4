"""The one map (一张图): every polygon plan overlaid into faces, each carrying what every plan says there.

Faces come from noding all plan boundaries and polygonising them, tile by tile, so they tile the union of
the plans exactly: their areas add up to the area of the union. Statistics per county are sums over faces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from multiplan.conflicts import pick_values
from multiplan.convexclip import kernel
from multiplan.crs import SQM_PER_HA, STORAGE_CRS, ellipsoidal_area
from multiplan.overlay import by_tile
from multiplan.rules import load_rules
from multiplan.rules.spec import ClassFilter

NODING_GRID_DEG = 1e-9
NODING_SCALE = 1e9  # 1 / NODING_GRID_DEG, exactly
# A vertex this near a segment (in grid steps) is put into it before rounding, as GEOS's noder does.
NEAR_VERTEX_STEPS = 0.01
# Tiles of the one map are at most this wide and high: in grid steps, below the kernel's 2**30.
MAX_TILE_DEG = 1.0
# Horizontal lines across each face where its inside point is sought.
INTERIOR_LINES = 7
SEVERITY_ORDER = ("forbidden", "major", "conditional", "notice")
_CONSTRUCTION = ClassFilter(groups=("construction",))
_NON_CONSTRUCTION = ClassFilter(groups=("non_construction",))


def build_one_map(frames: dict[str, gpd.GeoDataFrame], patches: gpd.GeoDataFrame | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> gpd.GeoDataFrame:
    """Faces of the planar overlay of the polygon ``frames`` with each plan's classes and the rules broken."""
    layers = [lid for lid, f in frames.items() if not f.empty and f.geom_type.str.contains("Polygon").all()]
    plans = [np.asarray(frames[lid].geometry.values, dtype=object) for lid in layers]
    starts = np.cumsum([0] + [len(p) for p in plans])  # layer i's features come at starts[i]:starts[i + 1]
    geoms = np.concatenate(plans or [np.zeros(0, dtype=object)])
    patch_geoms = np.zeros(0, dtype=object)
    if patches is not None and not patches.empty:  # corridors and slope areas cut faces of their own
        # (other patches are bounded by plan boundaries already noded)
        kinds = {rid: rule.kind for rid, rule in load_rules().items()}
        rule_code, rule_names = pd.factorize(patches["rule"])
        cutting = np.array([kinds.get(r, "corridor") in ("corridor", "raster") for r in rule_names], dtype=bool)
        patch_geoms = np.asarray(patches.geometry.values, dtype=object)
        geoms = np.concatenate([geoms, patch_geoms[cutting[rule_code]]])
    patch_tree = shapely.STRtree(patch_geoms)
    found = by_tile(geoms, lambda tile, parts, idx: _tile_faces(tile, parts, idx, starts, patch_tree, patch_geoms),
                    indexed=True, max_size=MAX_TILE_DEG,
                    progress=(lambda i, n: progress("one_map", i, n)) if progress else None)
    first_face = np.cumsum([0] + [len(t.faces) for t in found])
    faces = np.concatenate([np.zeros(0, dtype=object), *(t.faces for t in found)])
    areas = np.concatenate([np.zeros(0), *(t.areas for t in found)])
    owners = np.concatenate([np.zeros((0, len(layers)), dtype=np.int64), *(t.owners for t in found)])
    patch_idx = np.concatenate([np.zeros(0, dtype=np.int64), *(t.patch_at for t in found)])
    face_idx = np.concatenate([np.zeros(0, dtype=np.int64),
                               *(t.patch_face + first for t, first in zip(found, first_face[:-1], strict=True))])
    del found
    columns: dict[str, Any] = {}
    for i, lid in enumerate(layers):
        for column, source in (("class", "ydyh_code"), ("orig", "orig_code"), ("zone", "zone_code"),
                               ("feature", "feature_key")):
            columns[f"{lid}_{column}"] = pick_values(frames[lid][source], owners[:, i])
    # the county: from the first plan (in the frames' order) that covers the face
    giver = np.argmax(owners >= 0, axis=1)
    picked = owners[np.arange(len(owners)), giver]
    counties = pd.concat([frames[lid]["xzqdm"] for lid in layers], ignore_index=True) if layers else pd.Series([])
    columns["xzqdm"] = pick_values(counties, np.where(picked >= 0, starts[giver] + picked, -1))
    del owners, giver, picked
    columns["rules"] = np.full(len(faces), None, dtype=object)
    columns["severity"] = np.full(len(faces), None, dtype=object)
    if len(patch_idx):
        severity_code, severities = pd.factorize(patches["severity"])
        rank = np.array([SEVERITY_ORDER.index(s) if s in SEVERITY_ORDER else len(SEVERITY_ORDER)
                         for s in severities] + [len(SEVERITY_ORDER)], dtype=np.int64)[severity_code]
        columns["rules"], columns["severity"] = _rules_broken(len(faces), face_idx, patches["rule"].to_numpy()[patch_idx],
                                                              rank[patch_idx])
    columns["area_m2"] = areas
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(faces, crs=STORAGE_CRS))


class TileFaces(NamedTuple):
    faces: np.ndarray       # polygons
    areas: np.ndarray       # m²
    owners: np.ndarray      # (n, layers): each face's feature in each plan (-1: none)
    patch_at: np.ndarray    # the patches each face lies in (face patch_face[i] in patch patch_at[i])
    patch_face: np.ndarray


def _tile_faces(tile: shapely.Polygon, parts: np.ndarray, idx: np.ndarray, starts: np.ndarray,
                patch_tree: shapely.STRtree, patch_geoms: np.ndarray) -> TileFaces:
    """The faces of one tile (``parts``: its polygons, ``idx``: their places among the plans' features,
    beyond ``starts[-1]`` the cutting patches), with the feature of each plan and the patches they lie in;
    faces no plan covers (holes between plans) are dropped."""
    faces, points, areas = polygonise(parts)
    owners = np.full((len(faces), len(starts) - 1), -1, dtype=np.int64)
    if not len(faces):
        return TileFaces(faces, areas, owners, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    # the faces' points go in a tree that polygons query: a prepared polygon tests many points fast
    point_tree = shapely.STRtree(shapely.points(points))
    plan = idx < starts[-1]
    # each plan part tests the face points in its box; where a plan's features overlap, the first counts
    part_at, face_at = point_tree.query(parts[plan], predicate="contains")
    source = idx[plan][part_at]
    layer = np.searchsorted(starts, source, side="right") - 1
    first = np.full(owners.size, np.iinfo(np.int64).max)
    np.minimum.at(first, face_at * owners.shape[1] + layer, source - starts[layer])
    found = first < np.iinfo(np.int64).max
    owners.ravel()[found] = first[found]
    covered = (owners >= 0).any(axis=1)
    candidates = patch_tree.query(tile)
    hit, face_at = point_tree.query(patch_geoms[candidates], predicate="contains")
    kept = covered[face_at]
    return TileFaces(faces[covered], areas[covered], owners[covered], candidates[hit[kept]],
                     (np.cumsum(covered) - 1)[face_at[kept]])


def _rules_broken(n_faces: int, face_idx: np.ndarray, rules: np.ndarray, ranks: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per face, the rules it breaks (ids sorted, comma-separated) and the worst severity; None for a face
    that breaks none (``ranks``: each hit's severity's place in SEVERITY_ORDER). Vectorised: a province's one map has millions of faces."""
    code, names = pd.factorize(rules, sort=True)  # hashing: sorting millions of strings takes seconds
    names = np.asarray(names, dtype=object)
    # each face's set of rules as a row of bits, one 64-bit word per 64 rules
    words = np.zeros((n_faces, (len(names) + 63) // 64), dtype=np.uint64)
    np.bitwise_or.at(words, (face_idx, code // 64), np.left_shift(np.uint64(1), (code % 64).astype(np.uint64)))
    hit = np.flatnonzero(words.any(axis=1))
    if words.shape[1] == 1:  # up to 64 rules: one word per face, and distinct words are fast to find
        found, which = np.unique(words[hit, 0], return_inverse=True)
        sets = found[:, None]
    else:
        sets, which = np.unique(words[hit], axis=0, return_inverse=True)
    bits = np.unpackbits(sets.astype("<u8").view(np.uint8), axis=1, bitorder="little")  # bit i: rule i
    labels = np.array([",".join(names[np.flatnonzero(row)]) for row in bits], dtype=object)
    rule_column = np.full(n_faces, None, dtype=object)
    rule_column[hit] = labels[which.ravel()]
    rank = np.full(n_faces, len(SEVERITY_ORDER), dtype=np.int64)
    np.minimum.at(rank, face_idx, ranks)
    severity = np.full(n_faces, None, dtype=object)
    severity[hit] = np.asarray(SEVERITY_ORDER, dtype=object)[rank[hit]]
    return rule_column, severity


def polygonise(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The faces of one tile's polygons, a point inside each and their ellipsoidal areas (m²): every boundary
    noded against every other by snap rounding on the NODING_GRID_DEG grid, then the faces of that planar
    graph (:mod:`multiplan.facekernel`, compiled)."""
    rings = shapely.get_parts(shapely.boundary(parts))
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    if not len(xy):
        return np.zeros(0, dtype=object), np.zeros((0, 2)), np.zeros(0)
    steps = xy * NODING_SCALE  # in grid steps, from the tile's corner
    origin = np.floor(steps.min(axis=0))
    steps -= origin
    if steps.max() >= 2 ** 30 - 1:  # beyond the kernel's exact integer arithmetic (tiles are smaller)
        return _polygonise_geos(parts)
    ring_off = np.r_[0, np.flatnonzero(np.diff(ring_of)) + 1, len(ring_of)]
    k = kernel()
    fx, fy, ring_off = k.insert_near_vertices(np.ascontiguousarray(steps[:, 0]), np.ascontiguousarray(steps[:, 1]),
                                              ring_off, NEAR_VERTEX_STEPS)
    x0, y0, x1, y1 = k.snap_round(np.floor(fx + 0.5).astype(np.int64), np.floor(fy + 0.5).astype(np.int64),
                                  np.ascontiguousarray(ring_off))
    # nodes: the distinct ends; edges: the distinct pairs of nodes
    nodes, ends = np.unique(np.concatenate([x0, x1]) << 31 | np.concatenate([y0, y1]), return_inverse=True)
    start, end = ends[:len(x0)], ends[len(x0):]
    edges = np.unique(np.minimum(start, end) * len(nodes) + np.maximum(start, end))
    node_x, node_y = nodes >> 31, nodes & (2 ** 31 - 1)
    ring_nodes, ring_off, face_off, pinched = k.planar_faces(node_x, node_y, edges // len(nodes), edges % len(nodes))
    node_xy = np.column_stack([(node_x + origin[0]) / NODING_SCALE, (node_y + origin[1]) / NODING_SCALE])
    ring_xy = node_xy[ring_nodes]
    faces = shapely.from_ragged_array(shapely.GeometryType.POLYGON, ring_xy, (ring_off, face_off))
    points = k.interior_points(ring_xy, ring_off, face_off, INTERIOR_LINES)
    areas = k.ragged_areas(ring_xy, ring_off, face_off, np.arange(len(faces) + 1))
    if pinched.any():  # a ring through one node twice: as OGC wants it, a shell with a hole or two faces
        mended = shapely.get_parts(shapely.make_valid(faces[pinched]))
        mended = mended[shapely.get_type_id(mended) == 3]
        faces = np.concatenate([faces[~pinched], mended])
        points = np.concatenate([points[~pinched], shapely.get_coordinates(shapely.point_on_surface(mended))])
        areas = np.concatenate([areas[~pinched], ellipsoidal_area(mended)])
    lost = np.isnan(points[:, 0])
    if lost.any():
        points[lost] = shapely.get_coordinates(shapely.point_on_surface(faces[lost]))
    return faces, points, areas


def _polygonise_geos(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`polygonise` by GEOS (several times slower)."""
    lines = shapely.union_all(shapely.boundary(parts), grid_size=NODING_GRID_DEG)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    return faces, shapely.get_coordinates(shapely.point_on_surface(faces)), ellipsoidal_area(faces)


def class_areas(one_map: gpd.GeoDataFrame) -> pd.DataFrame:
    """Area (m², ha) per county, plan and unified class."""
    rows = []
    for column in [c for c in one_map.columns if c.endswith("_class")]:
        layer = column[: -len("_class")]
        part = one_map[one_map[column].notna()]
        grouped = part.groupby([part["xzqdm"].fillna("?"), part[column]])["area_m2"].sum()
        rows += [{"xzqdm": k[0], "layer": layer, "class": k[1], "area_m2": v, "area_ha": v / SQM_PER_HA}
                 for k, v in grouped.items()]
    return pd.DataFrame(rows, columns=["xzqdm", "layer", "class", "area_m2", "area_ha"])


def two_plan_differences(one_map: gpd.GeoDataFrame) -> pd.DataFrame:
    """The four 两规差异 classes per county: where both plans speak, construction or not in each."""
    if "urban_class" not in one_map or "land_use_class" not in one_map:
        return pd.DataFrame(columns=["xzqdm", "class", "area_m2", "area_ha"])
    both = one_map[one_map["urban_class"].notna() & one_map["land_use_class"].notna()]

    def state(code: str) -> str:
        if _CONSTRUCTION.matches_unified(code):
            return "construction"
        return "non_construction" if _NON_CONSTRUCTION.matches_unified(code) else "unclear"
    label = {("construction", "construction"): "both_construction",
             ("non_construction", "non_construction"): "both_non_construction",
             ("construction", "non_construction"): "urban_construction_land_use_not",
             ("non_construction", "construction"): "land_use_construction_urban_not"}
    kinds = [label.get((state(u), state(lu)), "unclear") for u, lu in zip(both["urban_class"], both["land_use_class"],
                                                                         strict=True)]
    grouped = both.assign(kind=kinds).groupby([both["xzqdm"].fillna("?"), "kind"])["area_m2"].sum()
    return pd.DataFrame([{"xzqdm": k[0], "class": k[1], "area_m2": v, "area_ha": v / SQM_PER_HA}
                         for k, v in grouped.items()])


def conflict_areas(one_map: gpd.GeoDataFrame) -> pd.DataFrame:
    """Conflict area per county, rule and severity (a face breaking several rules counts for each)."""
    hit = one_map[one_map["rules"].notna()]
    rows: dict[tuple[str, str], float] = {}
    for county, rules, area in zip(hit["xzqdm"].fillna("?"), hit["rules"], hit["area_m2"], strict=True):
        for rule in rules.split(","):
            rows[(county, rule)] = rows.get((county, rule), 0.0) + area
    return pd.DataFrame([{"xzqdm": c, "rule": r, "area_m2": a, "area_ha": a / SQM_PER_HA} for (c, r), a in rows.items()],
                        columns=["xzqdm", "rule", "area_m2", "area_ha"])


def summary(one_map: gpd.GeoDataFrame) -> dict[str, Any]:
    return {"faces": len(one_map), "area_m2": float(one_map["area_m2"].sum()),
            "two_plan_differences": two_plan_differences(one_map).to_dict("records"),
            "conflict_areas": conflict_areas(one_map).to_dict("records")}
