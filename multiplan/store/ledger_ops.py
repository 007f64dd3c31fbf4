"""Ledger operations shared by both stores, written against :class:`LedgerTransaction`."""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from multiplan.errors import NotFoundError
from multiplan.ledger import CLOSED, check_transition, conflict_id, outcome_of_disappearance
from multiplan.store.base import PATCH_STORE_COLUMNS, LedgerTransaction, current_actor, now_utc


def prepare_patches(patches: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Patches with their conflict ids, every stored column present, geometries multi-polygons."""
    columns = [c[0] for c in PATCH_STORE_COLUMNS if c[0] != "run_id"]
    if patches.empty:
        return gpd.GeoDataFrame({c: pd.Series([], dtype=object) for c in columns},
                                geometry=gpd.GeoSeries([], crs=4490))
    out = patches.copy()
    out["conflict_id"] = [conflict_id(*r) for r in zip(out["rule"], out["layer_a"], out["feature_a"],
                                                      out["layer_b"], out["feature_b"], strict=True)]
    for name, pg, _ in PATCH_STORE_COLUMNS:
        if name not in out.columns:
            out[name] = np.nan if pg == "double precision" else None
    geoms = np.asarray(out.geometry.values, dtype=object)
    single = shapely.get_type_id(geoms) == 3
    geoms[single] = shapely.multipolygons(geoms[single][:, None]) if single.any() else geoms[single]
    return gpd.GeoDataFrame(pd.DataFrame(out[columns]),
                            geometry=gpd.GeoSeries(geoms, crs=patches.crs or 4490))


def _event(cid: str, kind: str, before: str | None, after: str | None, run_id: int | None = None,
           actor: str | None = None, author: str | None = None, text: str | None = None) -> dict[str, Any]:
    return {"conflict_id": cid, "at": now_utc(), "actor": actor or current_actor(), "kind": kind,
            "from_status": before, "to_status": after, "run_id": run_id, "author": author, "text": text}


def record_run(tx: LedgerTransaction, run: dict[str, Any], patches: gpd.GeoDataFrame) -> dict[str, Any]:
    """Store a detection run and reconcile the ledger: new cases open, persisting ones keep their status
    and history, vanished open ones are closed by what changed."""
    rules = [r["rule"] for r in run["rules"]]
    run_id = tx.add_run({"at": now_utc(), "actor": current_actor(), "versions": json.dumps(run["versions"]),
                         "rule_set_sha256": run["rule_set_sha256"],
                         "summary": json.dumps({k: v for k, v in run.items() if k != "patches"},
                                               ensure_ascii=False, default=str)})
    tx.add_patches(run_id, patches)
    known = {c["conflict_id"]: c for c in tx.cases(rules)}
    outcome: dict[str, list[str]] = {"new": [], "unchanged": [], "resolved": []}
    for row in patches.drop(columns=patches.geometry.name).drop_duplicates("conflict_id").to_dict("records"):
        cid = row["conflict_id"]
        case = {k: row.get(k) for k in ("conflict_id", "rule", "severity", "layer_a", "version_a", "feature_a",
                                        "layer_b", "version_b", "feature_b", "xzqdm", "area_m2", "give_way",
                                        "suggestion_zh", "suggestion_en")}
        case.update(last_run=run_id, updated_at=now_utc())
        if cid in known:
            tx.put_case({**known[cid], **case, "status": known[cid]["status"]}, new=False)
            outcome["unchanged"].append(cid)
        else:
            tx.put_case({**case, "status": "open", "first_run": run_id}, new=True)
            tx.add_event(_event(cid, "detected", None, "open", run_id))
            outcome["new"].append(cid)
    seen = set(outcome["new"]) | set(outcome["unchanged"])
    for cid, case in known.items():
        if cid in seen or case["status"] in CLOSED:
            continue
        status, why = outcome_of_disappearance(case, run["versions"])
        tx.put_case({**case, "status": status, "last_run": run_id, "updated_at": now_utc()}, new=False)
        tx.add_event(_event(cid, "gone_in_rerun", case["status"], status, run_id, text=why))
        outcome["resolved"].append(cid)
    return {"run_id": run_id, **{k: sorted(v) for k, v in outcome.items()}}


def _case(tx: LedgerTransaction, cid: str) -> dict[str, Any]:
    found = tx.cases(conflict_id=cid)
    if not found:
        raise NotFoundError("conflict_not_found", conflict=cid)
    return found[0]


def transition(tx: LedgerTransaction, cid: str, target: str, actor: str, reason: str) -> dict[str, Any]:
    case = _case(tx, cid)
    check_transition(case["status"], target)
    updated = {**case, "status": target, "updated_at": now_utc()}
    tx.put_case(updated, new=False)
    tx.add_event(_event(cid, "status", case["status"], target, actor=actor, text=reason))
    return updated


def add_opinion(tx: LedgerTransaction, cid: str, actor: str, author: str, text: str) -> None:
    case = _case(tx, cid)
    tx.add_event(_event(cid, "opinion", case["status"], case["status"], actor=actor, author=author, text=text))
