"""Approval records in the browser: list, import, create, a detail page with the site on a map, the history
of checks, the audit trail, and state transitions (with the override an approval over a blocking check needs)."""

from __future__ import annotations

import json
from typing import Any

import shapely
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from multiplan.approvals import (
    STAGES,
    STATUSES,
    TRANSITIONS,
    create_approval,
    get_approval,
    import_approvals,
    list_approvals,
    transition_approval,
)
from web.access import ANY_USER, requires
from web.i18n import t
from web.plans import saved_upload
from web.store import get_store

bp = Blueprint("approvals", __name__, url_prefix="/approvals")
STRINGS = {
    "approvals_title": ("审批项目", "Approvals"), "a_code": ("项目代码", "Project code"), "a_name": ("项目名称", "Name"),
    "applicant": ("申请单位", "Applicant"), "stage": ("审批阶段", "Stage"), "applied_on": ("申请日期", "Applied"),
    "decided_on": ("办结日期", "Decided"), "officer": ("经办人", "Officer"), "a_notes": ("备注", "Notes"),
    "latest_verdict": ("最近核查结论", "Latest check"), "checks": ("用地核查记录", "Site checks"),
    "trail": ("审批记录(审计轨迹)", "Audit trail"), "conflicts": ("用地涉及的冲突", "Conflicts the site touches"),
    "new_check": ("核查用地", "Check the site"), "move_to": ("变更为", "Move to"), "override": ("越权批准理由(仅在核查结论为禁止或无法判定时需要)",
                                                                                  "Override reason (only when the latest check prohibits or is unknown)"),
    "import_title": ("导入审批系统导出文件", "Import an export of the approval system"),
    "import_file": ("CSV 或 JSON 文件", "CSV or JSON file"), "import_result": ("导入结果", "Import result"),
    "created": ("新增", "created"), "a_updated": ("更新", "updated"), "unchanged": ("未变", "unchanged"),
    "errors": ("出错的行", "rows in error"), "line": ("行", "line"), "create_title": ("新建审批项目", "New approval"),
    "site_file": ("用地文件(可选)", "Site file (optional)"), "status_submitted": ("已受理", "submitted"),
    "status_under_review": ("审查中", "under review"), "status_approved": ("已批准", "approved"),
    "status_rejected": ("不予批准", "rejected"), "status_withdrawn": ("已撤回", "withdrawn"),
    "a_no_site": ("尚无用地红线", "no site on record"), "moved_to": ("已变更为 {status}", "Moved to {status}"),
}


@bp.route("/")
@requires(*ANY_USER)
def index() -> Any:
    status, stage = request.args.get("status") or None, request.args.get("stage") or None
    rows = list_approvals(get_store(), status, stage)
    query = (request.args.get("q") or "").strip()
    if query:
        rows = [r for r in rows if query in r["code"] or query in (r["name"] or "")]
    return render_template("approvals/index.html", rows=rows, statuses=STATUSES, stages=STAGES, status=status,
                           stage=stage, q=query)


@bp.route("/<code>")
@requires(*ANY_USER)
def detail(code: str) -> Any:
    record = get_approval(get_store(), code)
    features = []
    if record["site"] is not None:
        features.append({"type": "Feature", "geometry": json.loads(shapely.to_geojson(record["site"])),
                         "properties": {"kind": "site",
                                        "verdict": record["checks"][-1]["verdict"] if record["checks"] else None}})
    return render_template("approvals/detail.html", a=record, moves=TRANSITIONS[record["status"]],
                           geojson={"type": "FeatureCollection", "features": features})


@bp.route("/<code>/transition", methods=["POST"])
@requires("officer")
def transition(code: str) -> Any:
    record = transition_approval(get_store(), code, request.form.get("status", ""), request.form.get("reason", ""),
                                 actor=g.user["username"], officer=(request.form.get("officer") or "").strip() or None,
                                 override=(request.form.get("override") or "").strip() or None)
    flash(t("moved_to", status=t("status_" + record["status"])))
    return redirect(url_for("approvals.detail", code=code))


@bp.route("/import", methods=["GET", "POST"])
@requires("officer")
def import_file() -> Any:
    result = None
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            abort(400)
        with saved_upload(upload) as path:
            result = import_approvals(get_store(), path, actor=g.user["username"])
    return render_template("approvals/import.html", result=result)


@bp.route("/new", methods=["GET", "POST"])
@requires("officer")
def create() -> Any:
    if request.method == "POST":
        from multiplan.sites import read_site

        record = {k: (request.form.get(k) or "").strip() or None
                  for k in ("code", "name", "applicant", "stage", "applied_on", "officer", "notes")}
        upload = request.files.get("site_file")
        if upload is not None and upload.filename:
            with saved_upload(upload) as path:
                record["site"] = read_site(path).geometry
        created = create_approval(get_store(), record, actor=g.user["username"])
        return redirect(url_for("approvals.detail", code=created["code"]))
    return render_template("approvals/new.html", stages=STAGES)
