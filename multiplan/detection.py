"""A detection run: every rule on the current (or named) plan versions, with its timings."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from multiplan import config
from multiplan.conflicts import Detection, detect, suggest_resolutions
from multiplan.crs import STORAGE_CRS
from multiplan.indicators import evaluate, load_indicators
from multiplan.io import Raster, read_raster
from multiplan.rules import RuleSpec, load_rules
from multiplan.rules.priority import load_priority
from multiplan.store.base import PlanStore


def rule_set_hash(rules: dict[str, RuleSpec]) -> str:
    """sha256 over the rule files, in id order: which rules a run applied."""
    # load_rules hands out the same RuleSpec objects until a file changes, so the objects themselves
    # (by identity: equal specs may come from different bytes) key the last hash: no stat of every file on
    # every site check
    global _LAST_HASH
    objects = tuple(rules[rid] for rid in sorted(rules))
    last = _LAST_HASH
    if last is not None and len(last[0]) == len(objects) and all(a is b for a, b in zip(last[0], objects, strict=True)):
        return last[1]
    key = tuple((rid, rules[rid].source, *_stat(rules[rid].source)) for rid in sorted(rules))
    if key not in _HASHES:
        h = hashlib.sha256()
        for rule_id in sorted(rules):
            h.update(Path(rules[rule_id].source).read_bytes())
        _HASHES.clear()
        _HASHES[key] = h.hexdigest()
    _LAST_HASH = (objects, _HASHES[key])
    return _HASHES[key]


_HASHES: dict[tuple, str] = {}
_LAST_HASH: tuple[tuple, str] | None = None


def _stat(path: str) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


ENGINES = ("local", "dask")

#: One rule on plan frames and rasters: what either engine offers a run.
RuleRunner = Callable[[RuleSpec, dict[str, gpd.GeoDataFrame], dict[str, int], dict[str, Raster]], Detection]


def run_detection(store: PlanStore, versions: dict[str, int] | None = None, rule_ids: list[str] | None = None,
                  rasters: dict[str, str | Path] | None = None,
                  progress: Callable[[str, int, int], None] | None = None, *,
                  engine: Literal["local", "dask"] = "local", scheduler: str | None = None) -> dict[str, Any]:
    """Run the rules; return the patches of every rule, per-rule summaries, inputs and timings.

    ``engine="dask"`` runs each rule in spatial partitions on the Dask cluster at ``scheduler``, or on a
    local cluster of two worker processes started for the run; the findings are the local engine's.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise ValueError("a scheduler address needs engine='dask'")
    rules = load_rules()
    chosen = {rid: rules[rid] for rid in (rule_ids or rules)}
    current = {v.layer: v.version for v in store.versions()}
    versions = {**current, **(versions or {})}
    needed = {lid for r in chosen.values() for side in (r.a, r.b) if side for lid in side.layers}
    summaries, patches = [], []
    with _engine(engine, scheduler, progress) as run_rule:  # a scheduler out of reach fails before any reading
        frames = {lid: store.read_features(lid, versions[lid]) for lid in sorted(needed) if lid in versions}
        raster_data = {name: read_raster(path) for name, path in (rasters or {}).items()}
        for i, (_, rule) in enumerate(sorted(chosen.items())):
            started = time.perf_counter()
            if rule.kind == "coverage":
                summaries.append(_coverage_summary(store, rule, versions, started))
            else:
                missing = [lid for lid in rule.a.layers + (rule.b.layers if rule.b else ()) if lid not in frames]
                found = canonical(run_rule(rule, frames, versions, raster_data))
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


@contextmanager
def _engine(engine: str, scheduler: str | None,
            progress: Callable[[str, int, int], None] | None) -> Iterator[RuleRunner]:
    """The engine's way of running one rule, with its cluster open while the run lasts."""
    if engine == "local":
        yield detect
        return
    from multiplan.distributed import dask_client, detect_distributed

    with dask_client(scheduler) as client:
        def run_rule(rule: RuleSpec, frames: dict[str, gpd.GeoDataFrame], versions: dict[str, int],
                     rasters: dict[str, Raster]) -> Detection:
            report = (lambda done, total: progress(rule.id, done, total)) if progress else None
            return detect_distributed(rule, frames, versions, rasters, client, progress=report)

        yield run_rule


_ORDER = ("layer_a", "feature_a", "layer_b", "feature_b")


def canonical(found: Detection) -> Detection:
    """``found`` in one form whichever engine computed it: patches sorted by the layer and feature on each
    side, then by area; a missing code is None in every text column (pandas reads a column of codes and
    None as strings with NaN, a column of None alone as objects); unknowns sorted by the same keys."""
    patches = found.patches.reset_index(drop=True)
    for column in patches.columns:
        if column != patches.geometry.name and (patches[column].dtype == object
                                                or pd.api.types.is_string_dtype(patches[column].dtype)):
            values = patches[column].astype(object)
            patches[column] = values.where(values.notna(), None)
    if len(patches) > 1:
        keys = [np.array(["" if v is None else str(v) for v in patches[c]]) for c in reversed(_ORDER)]
        patches = patches.iloc[np.lexsort([patches["area_m2"].to_numpy(dtype=float), *keys])].reset_index(drop=True)
    unknown = sorted(found.unknown, key=lambda u: tuple(str(u.get(k) or "") for k in (*_ORDER, "reason")))
    return replace(found, patches=patches, unknown=unknown)


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
