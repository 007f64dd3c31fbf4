"""Statistics per county from the one map and the ledger: what the dashboard and the API show.

The one map is built from the plan versions the latest detection run compared (the current versions when
nothing was detected yet), once per set of versions: versions never change, so a kept result is never
stale. Ledger statuses move, so they are read fresh by the callers.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pandas as pd

from multiplan.crs import SQM_PER_HA
from multiplan.onemap import build_one_map, class_areas, conflict_areas, two_plan_differences
from multiplan.specs import load_layer_specs, unified_classes
from multiplan.store.base import PlanStore

_CACHE: dict[tuple, dict[str, Any]] = {}
_LOCK = threading.Lock()
PATCH_COLUMNS = ["conflict_id", "rule", "severity", "xzqdm"]


def _versions(store: PlanStore) -> tuple[dict[str, int], int | None]:
    runs = store.detection_runs()
    if runs:
        versions = runs[-1]["versions"]
        return (json.loads(versions) if isinstance(versions, str) else dict(versions)), int(runs[-1]["id"])
    current: dict[str, int] = {}
    for v in store.versions():
        current[v.layer] = max(current.get(v.layer, 0), v.version)
    return current, None


def statistics_tables(store: PlanStore) -> dict[str, Any]:
    """The one map's tables: class areas, 两规差异, conflict area by rule and by severity, the patches' cases."""
    versions, run_id = _versions(store)
    key = (store.url, run_id, tuple(sorted(versions.items())))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        specs = load_layer_specs()
        frames = {lid: store.read_features(lid, n) for lid, n in versions.items()
                  if lid in specs and specs[lid].geometry == "polygon"}
        patches = store.read_patches(run_id) if run_id is not None else None
        tables: dict[str, Any] = {"versions": versions, "detection_run": run_id}
        if frames:
            one_map = build_one_map(frames, patches)
            hit = one_map[one_map["severity"].notna()]
            tables.update(
                classes=class_areas(one_map), two_plan=two_plan_differences(one_map),
                rule_areas=conflict_areas(one_map),
                severity_areas=hit.groupby([hit["xzqdm"].fillna("?"), "severity"])["area_m2"].sum()
                .rename("area_m2").reset_index(),
                counties=sorted({str(c) for c in one_map["xzqdm"].fillna("?")}))
        else:
            tables.update(classes=pd.DataFrame(), two_plan=pd.DataFrame(), rule_areas=pd.DataFrame(),
                          severity_areas=pd.DataFrame(), counties=[])
        if patches is not None and not patches.empty:
            found = patches.drop(columns=patches.geometry.name).drop_duplicates(["conflict_id", "xzqdm"])
            tables["patches"] = pd.DataFrame(found[PATCH_COLUMNS]).assign(xzqdm=found["xzqdm"].fillna("?"))
        else:
            tables["patches"] = pd.DataFrame(columns=PATCH_COLUMNS)
        _CACHE.clear()  # one set of versions at a time per process: the newest
        _CACHE[key] = tables
        return tables


def rows(frame: Any, county: str | None) -> list[dict[str, Any]]:
    """A table's rows for one county (all counties when ``county`` is None)."""
    if frame is None or len(frame) == 0:
        return []
    return (frame if county is None else frame[frame["xzqdm"] == county]).to_dict("records")


def county_statistics(store: PlanStore, county: str | None = None) -> dict[str, Any]:
    """What the dashboard shows: area by unified class per plan (with class-group names), 两规差异, and
    conflicts by rule and severity (cases, open cases, area) from the ledger."""
    tables = statistics_tables(store)
    names = unified_classes()
    by_class = []
    for row in rows(tables["classes"], county):
        group = str(row["class"]).split("|")[0][:2]
        name = names.get(group)
        by_class.append({**row, "group": group, "group_zh": name.name_zh if name else group,
                         "group_en": name.name_en if name else group})
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for c in store.conflicts():
        if county is not None and c["xzqdm"] != county:
            continue
        entry = counts.setdefault((c["rule"], c["severity"]), {"rule": c["rule"], "severity": c["severity"],
                                                               "count": 0, "open": 0, "area_m2": 0.0})
        entry["count"] += 1
        entry["open"] += c["status"] in ("open", "under_coordination")
        entry["area_m2"] += c["area_m2"] or 0.0
    return {"county": county, "versions": tables["versions"], "run": tables["detection_run"],
            "counties": [c for c in tables["counties"] if c != "?"], "area_by_class": by_class,
            "two_plan_differences": rows(tables["two_plan"], county),
            "conflict_area_by_rule": rows(tables["rule_areas"], county),
            "conflicts_by_rule": sorted(({**v, "area_ha": v["area_m2"] / SQM_PER_HA} for v in counts.values()),
                                        key=lambda r: (r["rule"], r["severity"]))}
