"""The one-map viewer (一张图): every plan's current version, the conflict patches and the approval sites on one
Leaflet map drawn from the vector tiles (web.tiles), with a popup per feature fed by the JSON views below.

The page passes its settings to ``static/js/viewer.js`` in a ``<script type="application/json">`` block; the
popups show every value as text. Hooks for browser tests: the map is ``#onemap``, each layer switch an
``input[data-layer]``, popups ``.feature-popup``; ``body[data-tiles-loaded="1"]`` once the first tiles have
loaded and ``body[data-popup-loaded="1"]`` once a popup's content has arrived.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flask import Blueprint, Response, abort, jsonify, render_template, request, url_for

from multiplan import approvals as approval_ops
from multiplan import tiles as engine
from multiplan.errors import NotFoundError
from multiplan.reports import CLASS_COLOURS, SEVERITY_COLOURS, VERDICT_COLOURS
from multiplan.specs import LAYER_IDS, load_layer_specs, unified_classes
from web.access import ANY_USER, requires
from web.i18n import language, t
from web.store import get_store
from web.tiles import latest_run, tile_cache

bp = Blueprint("viewer", __name__)

STRINGS: dict[str, tuple[str, str]] = {
    "map_layers": ("图层", "Layers"), "map_plans": ("规划图层(现行版本)", "Plans (current versions)"),
    "map_conflicts": ("冲突图斑", "Conflict patches"), "map_approvals": ("审批项目用地", "Approval sites"),
    "map_legend": ("图例", "Legend"), "map_classes": ("用地用海分类(一级类)", "Land and sea use (class groups)"),
    "map_networks": ("五网", "Five networks"), "map_severity": ("冲突严重程度", "Conflict severity"),
    "map_verdicts": ("用地核查结论", "Site check verdict"), "map_no_check": ("未核查", "not checked"),
    "map_search_code": ("按项目代码查找", "Find a project by code"), "map_search_hint": ("项目代码", "project code"),
    "map_not_found": ("找不到该项目,或该项目没有用地范围。", "No such project, or it has no site."),
    "map_county_all": ("全部行政区", "All counties"), "map_no_data": ("尚无规划数据。", "No plans loaded yet."),
    "map_loading": ("加载中…", "Loading…"), "map_load_failed": ("加载失败", "Could not load"),
    "map_run": ("检测批次", "detection run"), "map_version": ("版本", "version"),
    "map_source_attributes": ("原始属性", "Original attributes"),
    "map_linked_conflicts": ("相关冲突", "Linked conflicts"), "map_linked_approvals": ("相关审批项目", "Linked approvals"),
    "map_history": ("办理记录", "History"), "map_details": ("详情页", "Details page"), "map_none": ("无", "none"), "map_matches": ("同标识码要素数", "features with this key"),
    # attribute names in popups
    "f_layer": ("规划", "Plan"), "f_feature_no": ("要素序号", "Feature no."), "f_feature_key": ("要素标识码", "Feature key"),
    "f_orig_code": ("原分类代码", "Original code"), "f_ydyh_code": ("用地用海分类", "Unified class"),
    "f_ydyh_name": ("分类名称", "Class name"), "f_ydyh_match": ("对应关系", "Crosswalk match"),
    "f_zone_code": ("分区代码", "Zone"), "f_xzqdm": ("行政区代码", "Admin code"), "f_level": ("等级", "Level"),
    "f_corridor_m": ("廊道宽度(米)", "Corridor (m)"), "f_area_m2": ("面积(平方米)", "Area (m²)"),
    "f_length_m": ("长度(米)", "Length (m)"), "f_conflict_id": ("冲突编号", "Conflict"), "f_rule": ("规则", "Rule"),
    "f_severity": ("严重程度", "Severity"), "f_status": ("状态", "Status"), "f_layer_a": ("A 方规划", "Plan A"),
    "f_feature_a": ("A 方要素", "Feature A"), "f_version_a": ("A 方版本", "Version A"),
    "f_layer_b": ("B 方规划", "Plan B"), "f_feature_b": ("B 方要素", "Feature B"),
    "f_version_b": ("B 方版本", "Version B"), "f_give_way": ("建议调整方", "Should give way"),
    "f_suggestion": ("处理建议", "Suggestion"), "f_first_run": ("首次检出批次", "First run"),
    "f_last_run": ("最近检出批次", "Last run"), "f_updated_at": ("更新时间", "Updated"),
    "f_code": ("项目代码", "Project code"), "f_name": ("项目名称", "Project name"), "f_applicant": ("申请单位", "Applicant"),
    "f_stage": ("审批阶段", "Stage"), "f_applied_on": ("申请日期", "Applied on"), "f_decided_on": ("办结日期", "Decided on"),
    "f_officer": ("经办人", "Officer"), "f_notes": ("备注", "Notes"), "f_latest_verdict": ("最近核查结论", "Latest check"),
    "f_verdict": ("核查结论", "Verdict"), "f_side": ("本要素所在方", "This feature is side"),
    "f_other_layer": ("对方规划", "Other plan"), "f_other_feature": ("对方要素", "Other feature"),
    "f_at": ("时间", "At"), "f_kind": ("事项", "Event"), "f_reason": ("理由", "Reason"),
    # statuses
    "cs_open": ("待处理", "open"), "cs_under_coordination": ("协调中", "under coordination"),
    "cs_resolved_adjust_a": ("已解决(调整 A 方)", "resolved: plan A adjusted"),
    "cs_resolved_adjust_b": ("已解决(调整 B 方)", "resolved: plan B adjusted"),
    "cs_accepted_exception": ("作为例外接受", "accepted as an exception"), "cs_false_positive": ("误报", "false positive"),
    "as_submitted": ("已提交", "submitted"), "as_under_review": ("审查中", "under review"),
    "as_approved": ("已批准", "approved"), "as_rejected": ("不予批准", "rejected"), "as_withdrawn": ("已撤回", "withdrawn"),
}

#: Outline colours of the polygon plans, and line colours of the five networks.
LAYER_COLOURS = {
    "overall": "#4a4a4a", "land_use": "#6d6d6d", "urban": "#2c3e50", "farmland": "#b8860b", "forest": "#2e7d32",
    "ocean": "#1565c0", "eco_redline": "#c62828", "road": "#6d4c41", "fiber": "#8e44ad", "power": "#c2185b",
    "gas": "#00897b", "water": "#1e88e5",
}
#: Approval sites by their latest verdict, "none" for a site never checked.
SITE_COLOURS = {**VERDICT_COLOURS, "none": "#34495e"}
#: Layers switched on when the page opens.
DEFAULT_ON = ("overall", "road", "fiber", "power", "gas", "water", "conflicts", "approvals")
#: Hainan, for a store with no plans yet.
HAINAN = (108.6, 18.1, 111.1, 20.2)
PLAN_FIELDS = ("feature_no", "feature_key", "orig_code", "ydyh_code", "ydyh_match", "zone_code", "xzqdm", "level",
               "corridor_m", "area_m2", "length_m")
CASE_FIELDS = ("conflict_id", "rule", "severity", "status", "layer_a", "version_a", "feature_a", "layer_b",
               "version_b", "feature_b", "xzqdm", "area_m2", "give_way", "first_run", "last_run", "updated_at")
APPROVAL_FIELDS = ("code", "name", "applicant", "stage", "status", "applied_on", "decided_on", "officer", "notes",
                   "latest_verdict")


def plain(value: Any) -> Any:
    """A value JSON takes: numpy scalars as Python ones, NaN as None, bytes dropped."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes | memoryview):
        return None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _cached(key: tuple, build: Any) -> Any:
    """Derived data of immutable versions (bounds per county), kept with the app's tiles."""
    return tile_cache().get_or_build(("viewer",) + key, build)


def county_bounds(store: Any) -> tuple[dict[str, tuple[float, float, float, float]], tuple[float, ...]]:
    """Bounds per county (xzqdm) of the overall plan's current version (else the first polygon plan loaded),
    and the bounds of the whole."""
    specs = load_layer_specs()
    for layer in ("overall", *[lid for lid in LAYER_IDS if specs[lid].geometry == "polygon"]):
        found = store.versions(layer)
        if found:
            v = found[-1]
            bounds = _cached((store.url, "counties", layer, v.version, v.loaded_at),
                             lambda v=v: store.feature_bounds(v.layer, v.version, by="xzqdm"))
            counties = {str(k): b for k, b in bounds.items() if k is not None}
            if bounds:
                whole = (min(b[0] for b in bounds.values()), min(b[1] for b in bounds.values()),
                         max(b[2] for b in bounds.values()), max(b[3] for b in bounds.values()))
                return counties, whole
    return {}, HAINAN


def _status_label(prefix: str, value: str | None) -> str | None:
    return t(f"{prefix}_{value}") if value else None


@bp.route("/")
@requires(*ANY_USER)
def index() -> str:
    store = get_store()
    specs = load_layer_specs()
    lang = language()
    layers = []
    for layer in LAYER_IDS:
        found = store.versions(layer)
        if not found:
            continue
        spec = specs[layer]
        v = found[-1]
        bounds = _cached((store.url, "bounds", layer, v.version, v.loaded_at),
                         lambda v=v: store.feature_bounds(v.layer, v.version)).get(None)
        layers.append({"id": layer, "title": spec.title(lang), "version": v.version,
                       "geometry": spec.geometry, "network": spec.network, "checked": layer in DEFAULT_ON,
                       "colour": LAYER_COLOURS.get(layer, "#555555"), "bounds": list(bounds) if bounds else None})
    run = latest_run(store)
    counties, whole = county_bounds(store)
    plan_bounds = [layer["bounds"] for layer in layers if layer["bounds"]]
    everything = [min(b[0] for b in plan_bounds), min(b[1] for b in plan_bounds), max(b[2] for b in plan_bounds),
                  max(b[3] for b in plan_bounds)] if plan_bounds else None
    sited = engine.approvals_layer(store)  # approvals with a site, cached until the records change
    sites = sited.bounds().get(None)
    classes = unified_classes()
    groups = [{"code": code, "name": classes[code].name(lang), "colour": colour}
              for code, colour in CLASS_COLOURS.items() if code in classes]
    config = {
        "tilesBase": url_for("tiles.index"),
        "featureUrl": url_for("viewer.feature", layer="LAYER", version=0, key="KEY").rsplit("/LAYER/", 1)[0] + "/",
        "conflictUrl": url_for("viewer.conflict", conflict_id="ID").rsplit("/ID", 1)[0] + "/",
        "approvalUrl": url_for("viewer.approval", code="CODE").rsplit("/CODE", 1)[0] + "/",
        "layers": layers,
        # tiles are asked for only inside a layer's bounds (patches lie inside the plans)
        "conflicts": {"version": int(run["id"]), "bounds": everything} if run else None,
        "approvals": {"version": 0, "bounds": list(sites) if sites else None},
        "classColours": CLASS_COLOURS, "severityColours": SEVERITY_COLOURS, "verdictColours": SITE_COLOURS,
        "bounds": list(whole), "counties": {code: list(b) for code, b in counties.items()},
        "labels": {key[2:]: t(key) for key in STRINGS if key.startswith("f_")},
        "values": {
            "severity": {s: t(f"severity_{s}") for s in SEVERITY_COLOURS},
            "verdict": {v: t(f"verdict_{v}") for v in VERDICT_COLOURS},
            "conflictStatus": {k[3:]: t(k) for k in STRINGS if k.startswith("cs_")},
            "approvalStatus": {k[3:]: t(k) for k in STRINGS if k.startswith("as_")},
            "layer": {lid: specs[lid].title(lang) for lid in LAYER_IDS},
        },
        "pages": _detail_pages(),
        "text": {k: t(k) for k in ("map_details", "map_source_attributes", "map_linked_conflicts", "map_linked_approvals",
                                   "map_none", "map_loading", "map_load_failed", "map_not_found", "map_history",
                                   "map_matches", "map_run", "map_version")},
    }
    return render_template("viewer.html", layers=layers, run=run, counties=sorted(counties), groups=groups,
                           networks=[layer for layer in layers if layer["network"]],
                           severities=SEVERITY_COLOURS, verdicts=SITE_COLOURS,
                           approvals=[{"code": c, "name": n} for c, n in zip(sited.frame["code"], sited.frame["name"],
                                                                              strict=True)],
                           config=config)


def _detail_pages() -> dict[str, str]:
    """Base URLs of the conflict and approval pages, for links in the popups (when those pages exist)."""
    from werkzeug.routing import BuildError

    pages = {}
    for kind, endpoint, arg in (("conflict", "conflicts.detail", "conflict_id"), ("approval", "approvals.detail", "code")):
        try:
            pages[kind] = url_for(endpoint, **{arg: "ID"}).rsplit("/ID", 1)[0] + "/"
        except BuildError:
            continue
    return pages


# -- the popups' data ---------------------------------------------------------------------------------
def _cases_of(store: Any, layer: str, key: str) -> list[dict[str, Any]]:
    """Ledger cases with feature ``key`` of ``layer`` on either side."""
    out = []
    for case in store.conflicts():
        for side, other in (("a", "b"), ("b", "a")):
            if case[f"layer_{side}"] == layer and case[f"feature_{side}"] == key:
                out.append({**{k: plain(case.get(k)) for k in ("conflict_id", "rule", "severity", "status", "area_m2")},
                            "side": side, "other_layer": case[f"layer_{other}"],
                            "other_feature": case[f"feature_{other}"]})
    return out


def _approvals_of(store: Any, conflict_ids: list[str]) -> list[dict[str, Any]]:
    """Approvals whose site checks touched any of the conflicts, once each (the newest check)."""
    names = {r["code"]: r for r in approval_ops.list_approvals(store)}
    found: dict[str, dict[str, Any]] = {}
    for cid in conflict_ids:
        for hit in approval_ops.approvals_touching(store, cid):
            record = names.get(hit["code"], {})
            entry = found.setdefault(hit["code"], {"code": hit["code"], "name": record.get("name"),
                                                   "status": record.get("status"), "verdict": hit["verdict"],
                                                   "checked_at": hit["checked_at"], "conflicts": []})
            if hit["checked_at"] >= entry["checked_at"]:
                entry.update(verdict=hit["verdict"], checked_at=hit["checked_at"])
            if cid not in entry["conflicts"]:
                entry["conflicts"].append(cid)
    return [found[c] for c in sorted(found)]


@bp.route("/map/feature/<layer>/<int:version>/<path:key>")
@requires(*ANY_USER)
def feature(layer: str, version: int, key: str) -> Response:
    """A plan feature's attributes (its original ones too), its conflicts and the approvals touching them."""
    if layer not in LAYER_IDS:  # checked against the fixed list before it names a table
        abort(404)
    store = get_store()
    matches = store.find_features(layer, version, "feature_key", key)
    if matches.empty:
        abort(404)
    number = request.args.get("no", type=int)
    chosen = matches[matches["feature_no"] == number] if number is not None else matches
    row = (chosen if not chosen.empty else matches).iloc[0]
    classes = unified_classes()
    code = row["ydyh_code"] if isinstance(row["ydyh_code"], str) else None
    first = code.split("|")[0] if code else None
    attributes = {k: plain(row[k]) for k in PLAN_FIELDS}
    attributes["ydyh_name"] = classes[first].name(language()) if first in classes else None
    cases = _cases_of(store, layer, key)
    spec = load_layer_specs()[layer]
    return jsonify({"kind": "plan", "layer": layer, "layer_title": spec.title(language()), "version": version,
                    "feature_key": key, "matches": len(matches), "attributes": attributes,
                    "source_attributes": plain(dict(row["source_attributes"] or {})), "conflicts": cases,
                    "approvals": _approvals_of(store, [c["conflict_id"] for c in cases])})


@bp.route("/map/conflict/<conflict_id>")
@requires(*ANY_USER)
def conflict(conflict_id: str) -> Response:
    """A conflict case of the ledger and the approvals whose site checks touched it."""
    store = get_store()
    case = next(iter(store.conflicts(conflict_id=conflict_id)), None)
    if case is None:
        abort(404)
    lang = language()
    record = {k: plain(case.get(k)) for k in CASE_FIELDS}
    record["suggestion"] = case.get("suggestion_en" if lang == "en" else "suggestion_zh")
    events = [{k: e.get(k) for k in ("at", "actor", "kind", "from_status", "to_status", "author", "text")}
              for e in store.conflict_events(conflict_id)]
    return jsonify({"kind": "conflict", "conflict_id": conflict_id, "case": record, "events": events,
                    "approvals": _approvals_of(store, [conflict_id])})


@bp.route("/map/approval/<code>")
@requires(*ANY_USER)
def approval(code: str) -> Response:
    """An approval record with its site's bounds and centre (for the search), its checks' latest verdict and
    the conflicts its latest check touched."""
    store = get_store()
    try:
        record = approval_ops.get_approval(store, code.strip())
    except NotFoundError:
        abort(404)
    site = record.get("site")
    cases = {c["conflict_id"]: c for c in store.conflicts()} if record["conflicts"] else {}
    body = {k: plain(record.get(k)) for k in APPROVAL_FIELDS if k != "latest_verdict"}
    body["latest_verdict"] = record["checks"][-1]["verdict"] if record["checks"] else None
    center = None
    if site is not None and not site.is_empty:
        point = site.representative_point()
        center = [point.x, point.y]
    return jsonify({
        "kind": "approval", "code": record["code"], "record": body,
        "bounds": list(site.bounds) if center else None, "center": center,
        "conflicts": [{"conflict_id": cid, **{k: plain(cases.get(cid, {}).get(k))
                                              for k in ("rule", "severity", "status")}} for cid in record["conflicts"]],
        "events": [{k: e.get(k) for k in ("at", "kind", "from_status", "to_status", "reason", "officer")}
                   for e in record["events"]],
    })

