"""Differences between two versions of a plan layer: features and the area moved between classes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from multiplan.classify import class_name
from multiplan.crs import SQM_PER_HA, SQM_PER_MU, ellipsoidal_area
from multiplan.store.base import PlanStore

# Geometries closer than this (degrees, ~1 mm) count as unchanged.
GEOMETRY_TOLERANCE_DEG = 1e-8


def _keyed(frame: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, str]:
    """Index features by their identifier when it is unique, else by their geometry."""
    if frame["feature_key"].is_unique and frame["feature_key"].notna().all():
        return frame.set_index("feature_key", drop=False), "feature_key"
    keys = shapely.to_wkb(shapely.normalize(frame.geometry.values), hex=True)
    return frame.set_index(keys, drop=False).rename_axis("geometry_key"), "geometry"


def _attr_changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def class_moves(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """Area (m²) that moved from one unified class to another between two versions.

    Pairs of features whose classes differ are intersected; each piece is measured on the
    ellipsoid. Overlaps inside one version are data errors reported at load time.
    """
    tree = shapely.STRtree(new.geometry.values)
    left, right = tree.query(old.geometry.values, predicate="intersects")
    codes_old = old["ydyh_code"].to_numpy(dtype=object)
    codes_new = new["ydyh_code"].to_numpy(dtype=object)
    differ = np.array([codes_old[i] != codes_new[j] for i, j in zip(left, right, strict=True)], dtype=bool)
    if len(left):
        left, right = left[differ], right[differ]
    moved: dict[tuple[str, str], float] = defaultdict(float)
    if len(left):
        pieces = shapely.intersection(old.geometry.values[left], new.geometry.values[right])
        for i, j, area in zip(left, right, ellipsoidal_area(pieces), strict=True):
            if area > 0:
                moved[(codes_old[i] or "", codes_new[j] or "")] += float(area)
    return [{"from": a or None, "to": b or None, "from_name": class_name(a or None), "to_name": class_name(b or None),
             "area_m2": round(v, 3), "area_ha": round(v / SQM_PER_HA, 6), "area_mu": round(v / SQM_PER_MU, 4)}
            for (a, b), v in sorted(moved.items(), key=lambda kv: -kv[1])]


def diff_versions(store: PlanStore, layer: str, v1: int, v2: int) -> dict[str, Any]:
    """Features added, removed, with geometry or attributes changed, and class moves (调入/调出)."""
    old, key_kind = _keyed(store.read_features(layer, v1))
    new, key_kind2 = _keyed(store.read_features(layer, v2))
    if key_kind != key_kind2:  # one version lacks unique identifiers: compare both by geometry
        old, key_kind = _keyed(old.assign(feature_key=None))
        new, key_kind = _keyed(new.assign(feature_key=None))
    added = sorted(set(new.index) - set(old.index), key=str)
    removed = sorted(set(old.index) - set(new.index), key=str)
    common = sorted(set(old.index) & set(new.index), key=str)
    geometry_changed, attributes_changed = [], []
    if common:
        same_geom = shapely.equals_exact(shapely.normalize(old.geometry.loc[common].values),
                                         shapely.normalize(new.geometry.loc[common].values),
                                         tolerance=GEOMETRY_TOLERANCE_DEG)
        for key, same in zip(common, same_geom, strict=True):
            if not same:
                geometry_changed.append(key)
            fields = _attr_changes(old.at[key, "source_attributes"], new.at[key, "source_attributes"])
            if fields:
                attributes_changed.append({"key": key, "fields": fields})
    moves = class_moves(old, new) if new.geometry.geom_type.str.contains("Polygon").any() else []
    transfer_in: dict[str, float] = defaultdict(float)
    transfer_out: dict[str, float] = defaultdict(float)
    for m in moves:
        transfer_out[m["from"] or ""] += m["area_m2"]
        transfer_in[m["to"] or ""] += m["area_m2"]
    classes = sorted(set(transfer_in) | set(transfer_out))
    by_class = [{"code": c or None, "name": class_name(c or None), "in_m2": round(transfer_in[c], 3),
                 "out_m2": round(transfer_out[c], 3), "net_m2": round(transfer_in[c] - transfer_out[c], 3)}
                for c in classes]

    def keys_of(frame: gpd.GeoDataFrame, keys: list) -> list[str]:
        return [str(frame.at[k, "feature_key"]) for k in keys]
    return {
        "layer": layer, "from_version": v1, "to_version": v2, "matched_by": key_kind,
        "counts": {"added": len(added), "removed": len(removed), "geometry_changed": len(geometry_changed),
                   "attributes_changed": len(attributes_changed), "unchanged_features": len(common)
                   - len(set(geometry_changed) | {a["key"] for a in attributes_changed})},
        "added": keys_of(new, added), "removed": keys_of(old, removed),
        "geometry_changed": keys_of(new, geometry_changed),
        "attributes_changed": [{"key": str(new.at[a["key"], "feature_key"]), "fields": a["fields"]}
                               for a in attributes_changed],
        "class_moves": moves, "class_balance": by_class,
    }
