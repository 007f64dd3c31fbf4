"""A detection run: every rule on the current (or named) plan versions, with its timings."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from multiplan import config
from multiplan.conflicts import Detection, detect, suggest_resolutions
from multiplan.crs import STORAGE_CRS
from multiplan.indicators import evaluate, load_indicators
from multiplan.io import read_raster
from multiplan.rules import RuleSpec, load_rules
from multiplan.rules.priority import load_priority
from multiplan.store.base import PlanStore


def rule_set_hash(rules: dict[str, RuleSpec]) -> str:
    """sha256 over the rule files, in id order: which rules a run applied."""
    key = tuple((rid, rules[rid].source, *_stat(rules[rid].source)) for rid in sorted(rules))
    if key not in _HASHES:
        h = hashlib.sha256()
        for rule_id in sorted(rules):
            h.update(Path(rules[rule_id].source).read_bytes())
        _HASHES.clear()
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


_HASHES: dict[tuple, str] = {}


def _stat(path: str) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


def run_detection(store: PlanStore, versions: dict[str, int] | None = None, rule_ids: list[str] | None = None,
                  rasters: dict[str, str | Path] | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Run the rules; return the patches of every rule, per-rule summaries, inputs and timings."""
    rules = load_rules()
    chosen = {rid: rules[rid] for rid in (rule_ids or rules)}
    current = {v.layer: v.version for v in store.versions()}
    versions = {**current, **(versions or {})}
    needed = {lid for r in chosen.values() for side in (r.a, r.b) if side for lid in side.layers}
    frames = {lid: store.read_features(lid, versions[lid]) for lid in sorted(needed) if lid in versions}
    raster_data = {name: read_raster(path) for name, path in (rasters or {}).items()}
    summaries, patches = [], []
    for i, (_, rule) in enumerate(sorted(chosen.items())):
        started = time.perf_counter()
        if rule.kind == "coverage":
            summaries.append(_coverage_summary(store, rule, versions, started))
        else:
            missing = [lid for lid in rule.a.layers + (rule.b.layers if rule.b else ()) if lid not in frames]
            found = detect(rule, frames, versions, raster_data)
            patches.append(found.patches)
            summaries.append(_summary(found, missing, started))
        if progress:
            progress("rules", i + 1, len(chosen))
    frame = (gpd.GeoDataFrame(pd.concat([p for p in patches if not p.empty], ignore_index=True), crs=STORAGE_CRS)
             if any(not p.empty for p in patches) else gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=STORAGE_CRS)))
    if not frame.empty:
        frame = suggest_resolutions(frame, load_priority())
    warnings = []
    indicators = load_indicators()
    for layer, number in sorted(versions.items()):
        older = [v for v in store.versions(layer) if v.version < number]
        warnings += [{**w, "layer": layer, "version": number} for w in evaluate(
            layer, store.version(layer, number).report, older[-1].report if older else None, indicators)]
    return {"versions": {k: versions[k] for k in sorted(frames)}, "rule_set_sha256": rule_set_hash(chosen),
            "warnings": warnings,
            "rules_dir": config.setting("rules_dir"), "rules": summaries, "patches": frame}


def _summary(found: Detection, missing: list[str], started: float) -> dict[str, Any]:
    rule = found.rule
    return {"rule": rule.id, "version": rule.version, "kind": rule.kind, "severity": rule.severity,
            "title_zh": rule.title_zh, "title_en": rule.title_en, "patches": len(found.patches),
            "area_m2": round(found.area_m2, 3), "tolerance": rule.tolerance,
            "suppressed": {"count": found.suppressed_count, "area_m2": round(found.suppressed_area_m2, 3)},
            "unknown": found.unknown, "missing_layers": missing,
            "seconds": round(time.perf_counter() - started, 3)}


def _coverage_summary(store: PlanStore, rule: RuleSpec, versions: dict[str, int], started: float) -> dict[str, Any]:
    """Overlaps and gaps inside each plan were measured when it was loaded: gather them."""
    overlaps = gaps = 0
    area = 0.0
    missing = []
    for lid in rule.a.layers:
        if lid not in versions:
            missing.append(lid)
            continue
        quality = store.version(lid, versions[lid]).report.get("quality", {})
        found = [f for f in quality.get("overlaps", []) + quality.get("gaps", [])
                 if f["area_m2"] >= rule.tolerance.get("min_area_m2", 0)]
        overlaps += len(quality.get("overlaps", []))
        gaps += len(quality.get("gaps", []))
        area += sum(f["area_m2"] for f in found)
    return {"rule": rule.id, "version": rule.version, "kind": rule.kind, "severity": rule.severity,
            "title_zh": rule.title_zh, "title_en": rule.title_en, "patches": overlaps + gaps,
            "area_m2": round(area, 3), "tolerance": rule.tolerance, "suppressed": {"count": 0, "area_m2": 0.0},
            "unknown": [], "missing_layers": missing, "overlaps": overlaps, "gaps": gaps,
            "seconds": round(time.perf_counter() - started, 3)}
