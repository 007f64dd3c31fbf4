"""Statistics per county from the one map and the ledger: what the dashboard and the API show.

Building the one map costs seconds at county scale, so results are kept per set of plan versions and
detection run: versions never change, so an entry is never stale.
"""

from __future__ import annotations

import threading
from typing import Any

import geopandas as gpd

from multiplan.crs import SQM_PER_HA, STORAGE_CRS
from multiplan.onemap import build_one_map, class_areas, conflict_areas, two_plan_differences
from multiplan.specs import load_layer_specs, unified_classes
from multiplan.store.base import PlanStore

_CACHE: dict[tuple, dict[str, Any]] = {}
_LOCK = threading.Lock()


def _state(store: PlanStore) -> tuple:
    current = {}
    for v in store.versions():
        current[v.layer] = max(current.get(v.layer, 0), v.version)
    runs = store.detection_runs()
    return store.url, tuple(sorted(current.items())), int(runs[-1]["id"]) if runs else None


def one_map_state(store: PlanStore) -> tuple[tuple, gpd.GeoDataFrame]:
    """The one map of the current versions and latest run, with the key it is cached under."""
    key = _state(store)
    with _LOCK:
        if key in _CACHE:
            return key, _CACHE[key]["one_map"]
    specs = load_layer_specs()
    frames = {lid: store.read_features(lid, v) for lid, v in key[1] if specs[lid].geometry == "polygon"}
    patches = store.read_patches(key[2]) if key[2] is not None else gpd.GeoDataFrame(
        geometry=gpd.GeoSeries([], crs=STORAGE_CRS))
    one_map = build_one_map(frames, patches) if frames else gpd.GeoDataFrame(
        {"xzqdm": [], "rules": [], "severity": [], "area_m2": []}, geometry=gpd.GeoSeries([], crs=STORAGE_CRS))
    with _LOCK:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = {"one_map": one_map}
    return key, one_map


def county_statistics(store: PlanStore, county: str | None = None) -> dict[str, Any]:
    """Area by unified class per plan, the four 两规差异 classes, and conflicts by rule and severity."""
    key, one_map = one_map_state(store)
    names = unified_classes()
    classes = class_areas(one_map) if len(one_map) else None
    two_plan = two_plan_differences(one_map) if len(one_map) else None
    areas = conflict_areas(one_map) if len(one_map) else None

    def mine(frame: Any) -> list[dict[str, Any]]:
        if frame is None or frame.empty:
            return []
        rows = frame if county is None else frame[frame["xzqdm"] == county]
        return rows.to_dict("records")
    by_class = []
    for row in mine(classes):
        group = str(row["class"]).split("|")[0][:2]
        name = names.get(group)
        by_class.append({**row, "group": group, "group_zh": name.name_zh if name else group,
                         "group_en": name.name_en if name else group})
    cases = [c for c in store.conflicts() if county is None or c["xzqdm"] == county]
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cases:
        entry = counts.setdefault((c["rule"], c["severity"]), {"rule": c["rule"], "severity": c["severity"],
                                                               "count": 0, "open": 0, "area_m2": 0.0})
        entry["count"] += 1
        entry["open"] += c["status"] in ("open", "under_coordination")
        entry["area_m2"] += c["area_m2"] or 0.0
    return {"county": county, "versions": dict(key[1]), "run": key[2],
            "counties": sorted({c for c in one_map["xzqdm"].dropna().unique()}) if len(one_map) else [],
            "area_by_class": by_class, "two_plan_differences": mine(two_plan),
            "conflict_area_by_rule": mine(areas),
            "conflicts_by_rule": sorted(({**v, "area_ha": v["area_m2"] / SQM_PER_HA} for v in counts.values()),
                                        key=lambda r: (r["rule"], r["severity"]))}
