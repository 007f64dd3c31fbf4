"""The conflict ledger in the browser: list, filter, sort, and a case page with its map, its history,
status transitions, opinions and the approvals whose sites touch it."""

from __future__ import annotations

import json
from typing import Any

import shapely
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from multiplan.approvals import approvals_touching
from multiplan.ledger import STATUSES, TRANSITIONS
from multiplan.rules import load_rules
from web.access import ANY_USER, requires
from web.i18n import t
from web.store import get_store

bp = Blueprint("conflicts", __name__, url_prefix="/conflicts")
STRINGS = {
    "conflicts_title": ("冲突台账", "Conflict ledger"), "conflict": ("冲突", "Conflict"), "rule": ("规则", "Rule"),
    "severity": ("严重程度", "Severity"), "status": ("状态", "Status"), "plan_a": ("规划 A", "Plan A"),
    "plan_b": ("规划 B", "Plan B"), "suggestion": ("处理建议", "Suggestion"),
    "history": ("处理记录", "History"), "transition": ("变更状态", "Change status"), "reason": ("理由", "Reason"),
    "opinion": ("意见", "Opinion"), "author": ("提出方(如 区政府)", "From (e.g. district government)"),
    "add_opinion": ("记录意见", "Record opinion"), "approvals_touching": ("相关审批项目", "Approvals touching it"),
    "filter": ("筛选", "Filter"), "count": ("共 {n} 条", "{n} in all"), "page": ("页", "page"),
    "next": ("下一页", "next"), "prev": ("上一页", "previous"), "updated": ("更新时间", "Updated"),
    "status_open": ("待处理", "open"), "status_under_coordination": ("协调中", "under coordination"),
    "status_resolved_adjust_a": ("已解决(调整规划 A)", "resolved (plan A adjusted)"),
    "status_resolved_adjust_b": ("已解决(调整规划 B)", "resolved (plan B adjusted)"),
    "status_accepted_exception": ("作为例外接受", "accepted exception"),
    "status_false_positive": ("误报", "false positive"), "moved": ("状态已变更", "Status changed"),
    "opinion_saved": ("意见已记录", "Opinion recorded"),
}
SORTS = {"area": lambda c: -(c["area_m2"] or 0), "rule": lambda c: (c["rule"], c["conflict_id"]),
         "severity": lambda c: (("forbidden", "major", "conditional", "notice").index(c["severity"])
                                if c["severity"] in ("forbidden", "major", "conditional", "notice") else 9,
                                c["conflict_id"]),
         "status": lambda c: (c["status"], c["conflict_id"]), "updated": lambda c: c["updated_at"] or ""}
PER_PAGE = 50


@bp.route("/")
@requires(*ANY_USER)
def index() -> Any:
    store = get_store()
    args = {k: request.args.get(k) or None for k in ("status", "rule", "severity", "county")}
    cases = store.conflicts(args["status"], args["rule"])
    if args["severity"]:
        cases = [c for c in cases if c["severity"] == args["severity"]]
    if args["county"]:
        cases = [c for c in cases if c["xzqdm"] == args["county"]]
    sort = request.args.get("sort", "severity")
    cases.sort(key=SORTS.get(sort, SORTS["severity"]))
    page = max(request.args.get("page", 1, type=int), 1)
    total = len(cases)
    shown = cases[(page - 1) * PER_PAGE: page * PER_PAGE]
    counties = sorted({c["xzqdm"] for c in store.conflicts() if c["xzqdm"]})
    return render_template("conflicts/index.html", cases=shown, total=total, page=page,
                           pages=max((total + PER_PAGE - 1) // PER_PAGE, 1), args=args, sort=sort,
                           statuses=STATUSES, rules=sorted(load_rules()), counties=counties)


def _case(conflict_id: str) -> dict[str, Any]:
    case = next(iter(get_store().conflicts(conflict_id=conflict_id)), None)
    if case is None:
        abort(404)
    return case


@bp.route("/<conflict_id>")
@requires(*ANY_USER)
def detail(conflict_id: str) -> Any:
    store = get_store()
    case = _case(conflict_id)
    patches = store.read_patches(case["last_run"])
    mine = patches[patches["conflict_id"] == conflict_id]
    features = [{"type": "Feature", "geometry": json.loads(shapely.to_geojson(geom)),
                 "properties": {"severity": case["severity"]}} for geom in mine.geometry.values]
    rules = load_rules()
    return render_template("conflicts/detail.html", case=case, rule=rules.get(case["rule"]),
                           events=store.conflict_events(conflict_id), approvals=approvals_touching(store, conflict_id),
                           moves=TRANSITIONS.get(case["status"], ()),
                           geojson={"type": "FeatureCollection", "features": features})


@bp.route("/<conflict_id>/transition", methods=["POST"])
@requires("planner")
def transition(conflict_id: str) -> Any:
    _case(conflict_id)
    get_store().transition_conflict(conflict_id, request.form.get("status", ""), g.user["username"],
                                    request.form.get("reason", "").strip() or abort(400))
    flash(t("moved"))
    return redirect(url_for("conflicts.detail", conflict_id=conflict_id))


@bp.route("/<conflict_id>/opinion", methods=["POST"])
@requires("planner")
def opinion(conflict_id: str) -> Any:
    _case(conflict_id)
    author, text = request.form.get("author", "").strip(), request.form.get("text", "").strip()
    if not author or not text:
        abort(400)
    get_store().add_conflict_opinion(conflict_id, g.user["username"], author, text)
    flash(t("opinion_saved"))
    return redirect(url_for("conflicts.detail", conflict_id=conflict_id))
