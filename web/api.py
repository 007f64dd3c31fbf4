"""The HTTP API ``/api/v1``: plans, the conflict ledger, site checks, approvals and statistics, as JSON.

A thin adapter over the engine for the online approval system and other clients. Geometries are GeoJSON
in EPSG:4490 (lon/lat); errors are JSON ``{error, message, status}`` in the request's language
(``?lang=en`` or ``Accept-Language``; Chinese by default). The OpenAPI document (``web.openapi``) is
served at ``/api/v1/openapi.json`` and is kept true by tests/test_web_api_contract.py.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import shapely
from flask import Blueprint, Response, current_app, g, request, session, url_for

from multiplan import approvals as approval_ops
from multiplan import i18n as engine_i18n
from multiplan.errors import InputError, MultiplanError, NotFoundError
from multiplan.ledger import STATUSES as CONFLICT_STATUSES
from multiplan.onemap import SEVERITY_ORDER
from multiplan.specs import LAYER_IDS
from web.access import ANY_USER, PUBLIC, requires
from web.i18n import language
from web.store import get_store

bp = Blueprint("api", __name__, url_prefix="/api/v1")

#: Messages of the API's own input checks (the engine's errors bring their own).
STRINGS = {
    "api_body_not_object": ("请求体必须是 JSON 对象(Content-Type: application/json)。",
                            "The request body must be a JSON object (Content-Type: application/json)."),
    "api_missing_field": ("缺少必填字段 {field}。", "The required field {field} is missing."),
    "api_bad_field": ("字段 {field} 的值 {value} 无效:应为{expected_zh}。",
                      "Field {field} has an invalid value {value}: expected {expected_en}."),
    "api_bad_param": ("参数 {param} 的值 {value} 无效:应为{expected_zh}。",
                      "Parameter {param} has an invalid value {value}: expected {expected_en}."),
    "api_unknown_county": ("统计中没有行政区 {county}。可用:{counties}。",
                           "There is no county {county} in the statistics. Known: {counties}."),
}
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
MAX_REACH_M = 10000.0
_MAX_ID = 2**63 - 1
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_RENDER_LOCK = threading.Lock()    # one render at a time fills the cache once
_RENDER_CACHE_SIZE = 32


# -- errors ----------------------------------------------------------------------------------------
class ApiInputError(InputError):
    """A request the API cannot take as given: 400, with a message from :data:`STRINGS`."""

    def render(self, lang: str | None = None) -> str:
        zh, en = STRINGS[self.key]
        return (en if (lang or engine_i18n.language()) == "en" else zh).format(**self.params)


class ApiNotFound(NotFoundError):
    """A 404 with a message from :data:`STRINGS`."""

    render = ApiInputError.render


class InvalidInput(InputError):
    """An engine error about a value the client sent (a filter, a status name): 400, the engine's words."""

    def __init__(self, cause: MultiplanError) -> None:
        super().__init__(cause.key, **cause.params)
        self.cause = cause

    def render(self, lang: str | None = None) -> str:
        return self.cause.render(lang)


def _bad(param: str, value: Any, expected_zh: str, expected_en: str, field: bool = False) -> ApiInputError:
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if field:
        return ApiInputError("api_bad_field", field=param, value=repr(shown), expected_zh=expected_zh,
                             expected_en=expected_en)
    return ApiInputError("api_bad_param", param=param, value=repr(shown), expected_zh=expected_zh,
                         expected_en=expected_en)


# -- language: ?lang= wins; then a browser's session; then Accept-Language; Chinese by default ----------
@bp.before_request
def _request_language() -> None:
    if request.args.get("lang") in engine_i18n.LANGUAGES or "Accept-Language" not in request.headers:
        return
    if getattr(g, "auth_method", None) == "session" and session.get("lang"):
        return  # a browser keeps the language chosen in the web pages
    best = request.accept_languages.best_match(("zh", "en", "zh-CN", "en-US", "en-GB"))
    if best:
        g.lang = "en" if best.startswith("en") else "zh"
        engine_i18n.set_language(g.lang)


# -- JSON helpers ----------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars unwrapped, NaN as null, geometries as GeoJSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview) or value is pd.NA:
        return None
    if isinstance(value, shapely.Geometry):
        return geojson(value)
    return value


def geojson(geometry: shapely.Geometry | None) -> dict[str, Any] | None:
    if geometry is None or geometry.is_empty:
        return None
    return json.loads(shapely.to_geojson(geometry))


def answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (UTF-8 text, sorted keys, no NaN)."""
    body = json.dumps(plain(data), ensure_ascii=False, sort_keys=True, allow_nan=False)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def _body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiInputError("api_body_not_object")
    return data


def _text_field(data: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ApiInputError("api_missing_field", field=name)
        return None
    if not isinstance(value, str):
        raise _bad(name, value, "文本", "a string", field=True)
    return value.strip()


def _flag(name: str) -> bool:
    value = request.args.get(name)
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(name, value, " true 或 false", "true or false")


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not re.fullmatch(r"\s*\d{1,9}\s*", value) or not low <= int(value) <= high:
        raise _bad(name, value, f" {low} 到 {high} 之间的整数", f"an integer from {low} to {high}")
    return int(value)


def _choice_arg(name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    if value not in choices:
        raise _bad(name, value, "以下之一:" + ", ".join(choices), "one of " + ", ".join(choices))
    return value


def _bbox_arg() -> tuple[float, float, float, float] | None:
    value = request.args.get("bbox")
    if value in (None, ""):
        return None
    parts = value.split(",")
    if len(parts) == 4 and all(_NUMBER.match(p) for p in parts):
        minx, miny, maxx, maxy = (float(p) for p in parts)
        if all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) and minx <= maxx and miny <= maxy:
            return minx, miny, maxx, maxy
    raise _bad("bbox", value, "经纬度范围 最小经度,最小纬度,最大经度,最大纬度", "lon/lat bounds minx,miny,maxx,maxy")


def _paged(items: list[Any]) -> dict[str, Any]:
    page = _int_arg("page", 1, 1, 10**9)
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    start = (page - 1) * per_page
    return {"total": len(items), "page": page, "per_page": per_page,
            "pages": max(1, math.ceil(len(items) / per_page)), "items": items[start:start + per_page]}


def _actor() -> str:
    return g.user["username"]


def _check_id(value: int) -> int:
    if not 1 <= value <= _MAX_ID:
        raise NotFoundError("check_not_found", check=value)
    return value


def _layer(layer_id: str) -> str:
    """A layer id from the fixed list (never user text in SQL identifiers): 404 otherwise."""
    if layer_id not in LAYER_IDS:
        raise NotFoundError("spec_unknown_layer", layer=layer_id, layers=", ".join(LAYER_IDS))
    return layer_id


# -- plans -----------------------------------------------------------------------------------------
def _version_record(v: Any, with_report: bool = False) -> dict[str, Any]:
    out = {"layer": v.layer, "version": v.version, "label": v.label, "source_name": v.source_name,
           "source_sha256": v.source_sha256, "loaded_at": v.loaded_at, "loaded_by": v.loaded_by,
           "status": v.status, "n_read": v.n_read, "n_loaded": v.n_loaded, "n_rejected": v.n_rejected,
           "crs": v.crs, "crs_guessed": v.crs_guessed, "encoding": v.encoding,
           "encoding_guessed": v.encoding_guessed}
    if with_report:
        out["report"] = v.report
    return out


def _layer_record(spec: Any, versions: list[Any]) -> dict[str, Any]:
    return {"id": spec.id, "title": {"zh": spec.title_zh, "en": spec.title_en}, "geometry": spec.geometry,
            "coverage": spec.coverage, "precision": spec.precision, "network": spec.network,
            "current_version": versions[-1].version if versions else None, "versions": len(versions)}


@bp.route("/layers")
@requires(*ANY_USER)
def layers() -> Response:
    from multiplan.specs import load_layer_specs

    found: dict[str, list[Any]] = {}
    for v in get_store().versions():
        found.setdefault(v.layer, []).append(v)
    return answer({"items": [_layer_record(spec, sorted(found.get(lid, []), key=lambda v: v.version))
                             for lid, spec in load_layer_specs().items()]})


@bp.route("/layers/<layer_id>")
@requires(*ANY_USER)
def layer(layer_id: str) -> Response:
    from multiplan.specs import load_layer_specs

    spec = load_layer_specs()[_layer(layer_id)]
    return answer(_layer_record(spec, get_store().versions(layer_id)))


@bp.route("/layers/<layer_id>/versions")
@requires(*ANY_USER)
def layer_versions(layer_id: str) -> Response:
    return answer({"items": [_version_record(v) for v in get_store().versions(_layer(layer_id))]})


@bp.route("/layers/<layer_id>/versions/<int:number>")
@requires(*ANY_USER)
def layer_version(layer_id: str, number: int) -> Response:
    return answer(_version_record(get_store().version(_layer(layer_id), number), with_report=True))


# -- the conflict ledger ---------------------------------------------------------------------------
def _latest_run(store: Any) -> dict[str, Any] | None:
    runs = store.detection_runs()
    return runs[-1] if runs else None


def _run_versions(run: dict[str, Any]) -> dict[str, int]:
    versions = run["versions"]
    return json.loads(versions) if isinstance(versions, str) else dict(versions)


_CASE_FIELDS = ("conflict_id", "rule", "severity", "layer_a", "version_a", "feature_a", "layer_b", "version_b",
                "feature_b", "xzqdm", "status", "area_m2", "give_way", "suggestion_zh", "suggestion_en", "first_run",
                "last_run", "updated_at")
_INT_FIELDS = ("version_a", "version_b", "first_run", "last_run", "run_id", "rule_version", "crossings")


def _integers(row: dict[str, Any]) -> dict[str, Any]:
    """Whole numbers as integers (a store may hand back 1.0, or NaN for none)."""
    out = plain(row)
    for name in _INT_FIELDS:
        if isinstance(out.get(name), float):
            out[name] = int(out[name])
    return out


def _case(case: dict[str, Any]) -> dict[str, Any]:
    return _integers({k: case.get(k) for k in _CASE_FIELDS})


def _patch_geometries(store: Any, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The union of each case's patches in the run that last found it."""
    by_run: dict[int, set[str]] = {}
    for c in cases:
        if c.get("last_run") is not None:
            by_run.setdefault(int(c["last_run"]), set()).add(c["conflict_id"])
    out: dict[str, Any] = {}
    for run_id, ids in by_run.items():
        patches = store.read_patches(run_id)
        patches = patches[patches["conflict_id"].isin(ids)]
        for cid, group in patches.groupby("conflict_id"):
            geoms = group.geometry.values
            out[str(cid)] = geoms[0] if len(geoms) == 1 else shapely.union_all(np.asarray(geoms, dtype=object))
    return out


@bp.route("/conflicts")
@requires(*ANY_USER)
def conflicts() -> Response:
    from multiplan.rules import load_rules

    store = get_store()
    status = _choice_arg("status", CONFLICT_STATUSES)
    severity = _choice_arg("severity", SEVERITY_ORDER)
    rule = request.args.get("rule") or None
    county = request.args.get("county") or None
    bbox = _bbox_arg()
    with_geometry = _flag("geometry")
    cases = store.conflicts(status=status)
    if rule is not None:
        known = sorted(set(load_rules()) | {c["rule"] for c in cases})
        if rule not in known:
            raise _bad("rule", rule, "以下规则之一:" + ", ".join(known), "one of the rules " + ", ".join(known))
        cases = [c for c in cases if c["rule"] == rule]
    if severity is not None:
        cases = [c for c in cases if c["severity"] == severity]
    if county is not None:
        cases = [c for c in cases if c["xzqdm"] == county]
    if bbox is not None:
        run = _latest_run(store)
        inside: set[str] = set()
        if run is not None:
            patches = store.read_patches(int(run["id"]), bbox=bbox)
            hit = shapely.intersects(np.asarray(patches.geometry.values, dtype=object), shapely.box(*bbox))
            inside = set(patches["conflict_id"][hit])
        cases = [c for c in cases if c["conflict_id"] in inside]
    page = _paged([_case(c) for c in cases])
    if with_geometry:
        shapes = _patch_geometries(store, page["items"])
        for item in page["items"]:
            item["geometry"] = geojson(shapes.get(item["conflict_id"]))
    return answer(page)


def _find_case(store: Any, conflict_id: str) -> dict[str, Any]:
    found = store.conflicts(conflict_id=conflict_id)
    if not found:
        raise NotFoundError("conflict_not_found", conflict=conflict_id)
    return found[0]


_PATCH_PROPERTIES = ("run_id", "rule", "rule_version", "severity", "layer_a", "version_a", "feature_a", "class_a",
                     "orig_a", "zone_a", "layer_b", "version_b", "feature_b", "class_b", "orig_b", "zone_b", "xzqdm",
                     "area_m2", "area_ha", "area_mu", "length_inside_m", "crossings")


@bp.route("/conflicts/<conflict_id>")
@requires(*ANY_USER)
def conflict(conflict_id: str) -> Response:
    store = get_store()
    case = _find_case(store, conflict_id)
    features = []
    if case.get("last_run") is not None:
        patches = store.read_patches(int(case["last_run"]))
        patches = patches[patches["conflict_id"] == conflict_id]
        for row, geom in zip(patches[list(_PATCH_PROPERTIES)].to_dict("records"), patches.geometry.values,
                             strict=True):
            features.append({"type": "Feature", "geometry": geojson(geom), "properties": _integers(row)})
    events = [{k: e.get(k) for k in ("at", "actor", "kind", "from_status", "to_status", "run_id", "author", "text")}
              for e in store.conflict_events(conflict_id)]
    return answer({**_case(case), "events": events, "patches": {"type": "FeatureCollection", "features": features},
                   "approvals": approval_ops.approvals_touching(store, conflict_id)})


@bp.route("/conflicts/<conflict_id>/transition", methods=["POST"])
@requires("planner")
def conflict_transition(conflict_id: str) -> Response:
    data = _body()
    status = _text_field(data, "status", required=True)
    reason = _text_field(data, "reason", required=True)
    if status not in CONFLICT_STATUSES:
        raise _bad("status", status, "以下之一:" + ", ".join(CONFLICT_STATUSES),
                   "one of " + ", ".join(CONFLICT_STATUSES), field=True)
    store = get_store()
    _find_case(store, conflict_id)
    updated = store.transition_conflict(conflict_id, status, _actor(), reason)
    return answer(_case(updated))


# -- site checks -----------------------------------------------------------------------------------
def _as_of(data: dict[str, Any]) -> str | None:
    value = _text_field(data, "as_of")
    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        date.fromisoformat(value)
    except ValueError as exc:
        raise _bad("as_of", value, "日期 YYYY-MM-DD", "a date YYYY-MM-DD", field=True) from exc
    return value


def _site_input(data: dict[str, Any], approval: dict[str, Any] | None) -> Any:
    from multiplan.sites import site_from_text

    site, crs = data.get("site"), _text_field(data, "crs")
    if site is None:
        if approval is None:
            raise ApiInputError("api_missing_field", field="site")
        if approval["site"] is None:
            raise InputError("approval_no_site", code=approval["code"])
        return approval["site"]
    if isinstance(site, dict):
        return site_from_text(json.dumps(site), crs=crs)
    if isinstance(site, str):
        return site_from_text(site, crs=crs)
    raise _bad("site", site, " GeoJSON 几何、要素或 WKT 文本", "a GeoJSON geometry or Feature, or WKT text", field=True)


def _check_record(check: dict[str, Any]) -> dict[str, Any]:
    return {**{k: check.get(k) for k in ("id", "approval_code", "checked_at", "actor", "verdict",
                                         "content_sha256", "site_area_m2", "as_of")},
            "links": {"self": url_for("api.site_check", check_id=check["id"]),
                      **{fmt: url_for(f"api.site_check_report_{fmt}", check_id=check["id"])
                         for fmt in ("json", "html", "pdf")}}}


@bp.route("/site-checks", methods=["POST"])
@requires("officer")
def create_site_check() -> Response:
    from multiplan.sitecheck import PROJECT_USES, canonical_json, check_site

    data = _body()
    code = _text_field(data, "project_code")
    store = get_store()
    approval = approval_ops.find_approval(store, code) if code is not None else None  # 404 when unknown
    use = _text_field(data, "use") or "construction"
    if use not in PROJECT_USES:
        raise _bad("use", use, "以下之一:" + ", ".join(PROJECT_USES), "one of " + ", ".join(PROJECT_USES), field=True)
    reach = data.get("reach_m")
    reach = 500.0 if reach is None else reach
    if isinstance(reach, bool) or not isinstance(reach, int | float) or not 0 < reach <= MAX_REACH_M:
        raise _bad("reach_m", reach, f"0 到 {MAX_REACH_M:g} 之间的米数", f"metres from 0 to {MAX_REACH_M:g}", field=True)
    as_of = _as_of(data)
    site = _site_input(data, approval)
    dem = current_app.config.get("DEM")
    report = check_site(site, store, as_of=as_of, rasters={"dem": dem} if dem else None, project_use=use,
                        reach_m=float(reach))
    # the report's own canonical bytes, as `multiplan check-site --format json` gives them
    report_json = canonical_json(report, indent=None)
    check_id = approval_ops.record_check(store, report, getattr(site, "geometry", site), code, actor=_actor(),
                                         report_json=report_json)
    body = f'{{"check_id": {int(check_id)}, "report": {report_json}}}'
    return Response(body, status=201, mimetype="application/json",
                    headers={"Location": url_for("api.site_check", check_id=check_id)})


@bp.route("/site-checks/<int:check_id>")
@requires(*ANY_USER)
def site_check(check_id: int) -> Response:
    check = approval_ops.get_check(get_store(), _check_id(check_id))
    return answer({**_check_record(check), "site": geojson(check["site"]), "report": check["report"]})


def _rendered(check_id: int, fmt: str) -> tuple[str | bytes, str]:
    """A stored check's report as JSON, HTML or PDF; checks are immutable, so renders are cached."""
    from multiplan.site_reports import render_html, render_pdf
    from multiplan.sitecheck import canonical_json

    store = get_store()
    check = approval_ops.get_check(store, _check_id(check_id))
    if fmt == "json":
        return canonical_json(check["report"]) + "\n", "application/json"
    lang = language()
    cache: OrderedDict = current_app.extensions.setdefault("multiplan_api_renders", OrderedDict())
    key = (store.url, check_id, fmt, lang)
    with _RENDER_LOCK:
        if key not in cache:
            report = check["report"]
            cache[key] = render_html(report, lang, store) if fmt == "html" else render_pdf(report, lang, store)
            while len(cache) > _RENDER_CACHE_SIZE:
                cache.popitem(last=False)
        cache.move_to_end(key)
        body = cache[key]
    return body, "text/html" if fmt == "html" else "application/pdf"


def _report_response(check_id: int, fmt: str) -> Response:
    body, mimetype = _rendered(check_id, fmt)
    headers = {"Content-Disposition": f'inline; filename="site-check-{check_id}.{fmt}"'}
    return Response(body, mimetype=mimetype, headers=headers)


@bp.route("/site-checks/<int:check_id>/report.json")
@requires(*ANY_USER)
def site_check_report_json(check_id: int) -> Response:
    return _report_response(check_id, "json")


@bp.route("/site-checks/<int:check_id>/report.html")
@requires(*ANY_USER)
def site_check_report_html(check_id: int) -> Response:
    return _report_response(check_id, "html")


@bp.route("/site-checks/<int:check_id>/report.pdf")
@requires(*ANY_USER)
def site_check_report_pdf(check_id: int) -> Response:
    return _report_response(check_id, "pdf")


# -- approvals -------------------------------------------------------------------------------------
_APPROVAL_FIELDS = ("code", "name", "applicant", "stage", "status", "applied_on", "decided_on", "officer", "notes",
                    "created_at", "updated_at", "source")


def _engine_input(call: Any, *args: Any) -> Any:
    """Run a normaliser of the engine; its refusal of a client's value is a 400."""
    try:
        return call(*args)
    except approval_ops.ApprovalError as exc:
        raise InvalidInput(exc) from exc


@bp.route("/approvals")
@requires(*ANY_USER)
def approvals() -> Response:
    status = request.args.get("status") or None
    stage = request.args.get("stage") or None
    if status is not None:
        status = _engine_input(approval_ops.normalise_status, status)
    if stage is not None:
        stage = _engine_input(approval_ops.normalise_stage, stage)
    rows = approval_ops.list_approvals(get_store(), status, stage)
    return answer(_paged([{**{k: r.get(k) for k in _APPROVAL_FIELDS}, "latest_verdict": r.get("latest_verdict"),
                           "has_site": r.get("site") is not None} for r in rows]))


def _approval_detail(store: Any, record: dict[str, Any]) -> dict[str, Any]:
    cases = {c["conflict_id"]: c for c in store.conflicts()} if record["conflicts"] else {}
    events = [{k: e.get(k) for k in ("at", "actor", "kind", "from_status", "to_status", "reason", "officer",
                                     "check_id", "detail")} for e in record["events"]]
    return {**{k: record.get(k) for k in _APPROVAL_FIELDS}, "site": geojson(record["site"]), "events": events,
            "checks": [_check_record(c) for c in record["checks"]],
            "conflicts": [{"conflict_id": cid, **{k: cases.get(cid, {}).get(k) for k in ("rule", "severity", "status")}}
                          for cid in record["conflicts"]]}


@bp.route("/approvals/<code>")
@requires(*ANY_USER)
def approval(code: str) -> Response:
    store = get_store()
    return answer(_approval_detail(store, approval_ops.get_approval(store, code)))


@bp.route("/approvals", methods=["POST"])
@requires("officer")
def create_approval() -> Response:
    from multiplan.sites import site_from_text

    data = _body()
    record: dict[str, Any] = {
        "code": _engine_input(approval_ops.check_code, _text_field(data, "code", required=True)),
        "stage": _engine_input(approval_ops.normalise_stage, _text_field(data, "stage", required=True)),
        "status": _engine_input(approval_ops.normalise_status, _text_field(data, "status") or "submitted"),
        "name": _text_field(data, "name", required=True),
    }
    for name in ("applicant", "applied_on", "decided_on", "officer", "notes"):
        value = _text_field(data, name)
        if value is not None:
            if name in ("applied_on", "decided_on") and not re.match(r"^\d{4}-\d{2}-\d{2}", value):
                raise InvalidInput(approval_ops.ApprovalError("approval_bad_date", field=name, value=value))
            record[name] = value
    site = data.get("site")
    if site is not None:
        if not isinstance(site, dict | str):
            raise _bad("site", site, " GeoJSON 几何、要素或 WKT 文本", "a GeoJSON geometry or Feature, or WKT text",
                       field=True)
        text = json.dumps(site) if isinstance(site, dict) else site
        record["site"] = site_from_text(text, crs=_text_field(data, "crs")).geometry
    store = get_store()
    created = approval_ops.create_approval(store, record, actor=_actor())
    return answer(_approval_detail(store, created), 201,
                  headers={"Location": url_for("api.approval", code=created["code"])})


@bp.route("/approvals/<code>/transition", methods=["POST"])
@requires("officer")
def approval_transition(code: str) -> Response:
    data = _body()
    status = _engine_input(approval_ops.normalise_status, _text_field(data, "status", required=True))
    reason = _text_field(data, "reason", required=True)
    store = get_store()
    updated = approval_ops.transition_approval(store, code, status, reason, actor=_actor(),
                                               officer=_text_field(data, "officer"),
                                               override=_text_field(data, "override"))
    return answer(_approval_detail(store, updated))


# -- statistics ------------------------------------------------------------------------------------
def _rows(frame: Any, county: str | None, columns: list[str]) -> list[dict[str, Any]]:
    if frame is None or len(frame) == 0:
        return []
    if county is not None:
        frame = frame[frame["xzqdm"] == county]
    return [plain({c: row[c] for c in columns}) for row in frame.to_dict("records")]


@bp.route("/statistics")
@requires(*ANY_USER)
def statistics() -> Response:
    from multiplan.crs import SQM_PER_HA

    county = request.args.get("county") or None
    from multiplan.statistics import statistics_tables

    tables = statistics_tables(get_store())
    if county is not None and county not in tables["counties"]:
        raise ApiNotFound("api_unknown_county", county=county, counties=", ".join(tables["counties"]) or "-")
    patches = tables["patches"]
    if county is not None:
        patches = patches[patches["xzqdm"] == county]
    status = {c["conflict_id"]: c["status"] for c in get_store().conflicts()}  # the ledger moves; not cached
    patches = patches.assign(open=[status.get(c) in ("open", "under_coordination") for c in patches["conflict_id"]])
    by_rule: dict[tuple[str, str], dict[str, Any]] = {}
    for row in _rows(tables["rule_areas"], county, ["xzqdm", "rule", "area_m2"]):
        by_rule[(row["xzqdm"], row["rule"])] = {**row, "severity": None, "count": 0, "open": 0}
    by_severity: dict[tuple[str, str], dict[str, Any]] = {}
    for row in _rows(tables["severity_areas"], county, ["xzqdm", "severity", "area_m2"]):
        by_severity[(row["xzqdm"], row["severity"])] = {**row, "count": 0, "open": 0}
    for (xzqdm, rule, severity), group in patches.groupby(["xzqdm", "rule", "severity"]):
        entry = by_rule.setdefault((xzqdm, rule), {"xzqdm": xzqdm, "rule": rule, "area_m2": 0.0, "count": 0, "open": 0})
        entry.update(severity=severity, count=int(group["conflict_id"].nunique()),
                     open=int(group.loc[group["open"], "conflict_id"].nunique()))
    for (xzqdm, severity), group in patches.groupby(["xzqdm", "severity"]):
        entry = by_severity.setdefault((xzqdm, severity), {"xzqdm": xzqdm, "severity": severity, "area_m2": 0.0})
        entry.update(count=int(group["conflict_id"].nunique()),
                     open=int(group.loc[group["open"], "conflict_id"].nunique()))
    for entry in (*by_rule.values(), *by_severity.values()):
        entry["area_ha"] = entry["area_m2"] / SQM_PER_HA
    return answer({
        "county": county, "counties": tables["counties"], "versions": tables["versions"],
        "detection_run": tables["detection_run"],
        "class_areas": _rows(tables["classes"], county, ["xzqdm", "layer", "class", "area_m2", "area_ha"]),
        "two_plan_differences": _rows(tables["two_plan"], county, ["xzqdm", "class", "area_m2", "area_ha"]),
        "conflicts": {"by_rule": [by_rule[k] for k in sorted(by_rule)],
                      "by_severity": sorted(by_severity.values(),
                                            key=lambda e: (e["xzqdm"], SEVERITY_ORDER.index(e["severity"])))},
    })


# -- the document ------------------------------------------------------------------------------------
@bp.route("/openapi.json")
@requires(PUBLIC)
def openapi() -> Response:
    from web.openapi import document

    return answer(document())
