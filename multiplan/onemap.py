"""The one map (一张图): every polygon plan overlaid into faces, each carrying what every plan says there.

Faces come from noding all plan boundaries and polygonising them, tile by tile, so they tile the union of
the plans exactly: their areas add up to the area of the union. Statistics per county are sums over faces.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from multiplan.conflicts import pick_values
from multiplan.crs import SQM_PER_HA, STORAGE_CRS, ellipsoidal_area
from multiplan.overlay import by_tile, threads, tree_query
from multiplan.rules import load_rules
from multiplan.rules.spec import ClassFilter

NODING_GRID_DEG = 1e-9
# From this many polygons on (several tiles' worth), tiles are polygonised in worker processes.
PROCESS_MIN_FEATURES = 40_000
SEVERITY_ORDER = ("forbidden", "major", "conditional", "notice")
_CONSTRUCTION = ClassFilter(groups=("construction",))
_NON_CONSTRUCTION = ClassFilter(groups=("non_construction",))


def build_one_map(frames: dict[str, gpd.GeoDataFrame], patches: gpd.GeoDataFrame | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> gpd.GeoDataFrame:
    """Faces of the planar overlay of the polygon ``frames`` with each plan's classes and the rules broken."""
    layers = [lid for lid, f in frames.items() if not f.empty and f.geom_type.str.contains("Polygon").all()]
    geoms = np.concatenate([np.asarray(frames[lid].geometry.values, dtype=object) for lid in layers]
                           or [np.zeros(0, dtype=object)])
    if patches is not None and not patches.empty:  # corridors and slope areas cut faces of their own
        # (other patches are bounded by plan boundaries already noded)
        kinds = {rid: rule.kind for rid, rule in load_rules().items()}
        cutting = patches["rule"].map(lambda r: kinds.get(r, "corridor")).isin(("corridor", "raster")).to_numpy()
        geoms = np.concatenate([geoms, np.asarray(patches.geometry.values[cutting], dtype=object)])
    faces = _faces(geoms, progress)
    with ThreadPoolExecutor(threads()) as pool:  # shapely releases the GIL
        points = np.concatenate([np.zeros(0, dtype=object),
                                 *pool.map(shapely.point_on_surface, np.array_split(faces, 4 * threads()))])
    # each face's feature in each plan (-1: none; where a plan's features overlap, the first)
    owner = {}
    # the points go in the tree and each plan's features query it: a prepared polygon tests many points fast
    point_tree = shapely.STRtree(points)
    for lid in layers:
        feat_idx, face_idx = tree_query(point_tree, frames[lid].geometry.values, "contains")
        order = np.lexsort((feat_idx, face_idx))
        face_idx, feat_idx = face_idx[order], feat_idx[order]
        lead = np.r_[True, face_idx[1:] != face_idx[:-1]] if len(face_idx) else np.zeros(0, dtype=bool)
        first = np.full(len(faces), -1, dtype=np.int64)
        first[face_idx[lead]] = feat_idx[lead]
        owner[lid] = first
    covered = np.zeros(len(faces), dtype=bool)
    for first in owner.values():
        covered |= first >= 0
    # faces no plan covers (holes between plans) are dropped before any column is built
    faces, points = faces[covered], points[covered]
    columns: dict[str, Any] = {}
    admin_from = np.full(len(faces), -1, dtype=np.int64)  # which layer gives each face its county
    for i, lid in enumerate(layers):
        first = owner[lid] = owner[lid][covered]
        for column, source in (("class", "ydyh_code"), ("orig", "orig_code"), ("zone", "zone_code"),
                               ("feature", "feature_key")):
            columns[f"{lid}_{column}"] = pick_values(frames[lid][source], first)
        admin_from[(admin_from < 0) & (first >= 0)] = i
    admin = np.full(len(faces), None, dtype=object)
    for i, lid in enumerate(layers):
        mine = admin_from == i
        admin[mine] = np.asarray(pick_values(frames[lid]["xzqdm"], owner.pop(lid)[mine]), dtype=object)
    columns["xzqdm"] = admin
    columns["rules"] = np.full(len(faces), None, dtype=object)
    columns["severity"] = np.full(len(faces), None, dtype=object)
    if patches is not None and not patches.empty:
        patch_idx, face_idx = tree_query(point_tree, patches.geometry.values, "contains")
        kept = covered[face_idx]  # faces are numbered among the covered ones now
        patch_idx, face_idx = patch_idx[kept], (np.cumsum(covered) - 1)[face_idx[kept]]
        rank = patches["severity"].map({s: i for i, s in enumerate(SEVERITY_ORDER)}).to_numpy(dtype=np.int64)
        columns["rules"], columns["severity"] = _rules_broken(len(faces), face_idx, patches["rule"].to_numpy()[patch_idx],
                                                              rank[patch_idx])
    del points, point_tree
    columns["area_m2"] = ellipsoidal_area(faces)
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(faces, crs=STORAGE_CRS))


def _rules_broken(n_faces: int, face_idx: np.ndarray, rules: np.ndarray, ranks: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per face, the rules it breaks (ids sorted, comma-separated) and the worst severity; None for a face
    that breaks none (``ranks``: each hit's severity's place in SEVERITY_ORDER). Vectorised: a province's one map has millions of faces."""
    names, code = np.unique(rules.astype(str), return_inverse=True)
    # each face's set of rules as a row of bits, one 64-bit word per 64 rules
    words = np.zeros((n_faces, (len(names) + 63) // 64), dtype=np.uint64)
    np.bitwise_or.at(words, (face_idx, code // 64), np.left_shift(np.uint64(1), (code % 64).astype(np.uint64)))
    hit = np.flatnonzero(words.any(axis=1))
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


def _polygonise(parts: np.ndarray) -> np.ndarray:
    """The faces of one tile's polygons: every boundary noded against every other, then polygonised."""
    lines = shapely.union_all(shapely.boundary(parts), grid_size=NODING_GRID_DEG)
    return shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))


def _faces(geoms: np.ndarray, progress: Callable[[str, int, int], None] | None) -> np.ndarray:
    """The faces of the overlay of ``geoms``, tile by tile: inside a tile, every boundary noded against
    every other on a 1e-9° (0.1 mm) grid (robust where plans nearly coincide) and polygonised; faces
    crossing a tile edge are cut there."""
    # GEOS's polygonizer holds the GIL: a map of several tiles is built in worker processes
    found = by_tile(geoms, _polygonise, progress=(lambda i, n: progress("one_map", i, n)) if progress else None,
                    processes=len(geoms) >= PROCESS_MIN_FEATURES)
    return np.concatenate(found) if found else np.zeros(0, dtype=object)


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
