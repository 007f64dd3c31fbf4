"""Officer pages: check a site drawn on the map, uploaded as a file or pasted as coordinates; the result with
its map, tables and verdict; downloads as HTML, PDF and JSON; filing it under an approval record."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from multiplan.approvals import get_check, list_approvals, record_check
from multiplan.errors import InputError
from multiplan.site_reports import TERRAIN_LABELS, render_html, render_pdf
from multiplan.sitecheck import canonical_json, check_site
from multiplan.sites import read_site, site_from_text
from web.access import requires
from web.i18n import language, t
from web.plans import saved_upload
from web.store import get_store

bp = Blueprint("sitecheck", __name__, url_prefix="/sitecheck")
STRINGS = {
    "sitecheck_title": ("建设项目用地核查", "Project site check"),
    "draw": ("在地图上绘制", "Draw on the map"), "upload_site": ("上传用地文件", "Upload a site file"),
    "paste": ("粘贴坐标或图形", "Paste coordinates or a shape"),
    "site_file_help": ("GeoJSON、WKT、zip 压缩的 shapefile、KML/KMZ、DXF 或界址点坐标表(CSV/TXT)",
                       "GeoJSON, WKT, zipped shapefile, KML/KMZ, DXF or a 界址点 coordinate table (CSV/TXT)"),
    "paste_help": ("界址点坐标表(点号,X,Y)、WKT 或 GeoJSON", "A 界址点 table (point, X, Y), WKT or GeoJSON"),
    "draw_help": ("点击地图上的多边形工具绘制用地红线。", "Use the polygon tool on the map to draw the site."),
    "crs_optional": ("坐标系(可选)", "CRS (optional)"), "as_of": ("审查基准日(可选)", "Check as of (optional)"),
    "project_use": ("项目类型", "Project"), "use_construction": ("建设项目", "building land"),
    "use_network": ("线性基础设施", "linear infrastructure"), "approval": ("关联审批项目(可选)", "Approval (optional)"),
    "run_check": ("开始核查", "Run the check"), "result_title": ("核查结果", "Check result"),
    "site_area": ("用地面积", "Site area"), "findings": ("规则核查", "Rule findings"),
    "control_lines": ("三线关系", "Control lines"), "sc_overlaps": ("各规划地类", "Plan classes"),
    "networks": ("五网廊道", "Network corridors"), "terrain": ("地形", "Terrain"),
    "conflicts_touched": ("涉及的冲突", "Conflicts touched"), "downloads": ("下载报告", "Download the report"),
    "attach": ("归档到审批项目", "File under an approval"), "attached": ("已归档到审批项目 {code}", "Filed under approval {code}"),
    "no_site": ("请绘制、上传或粘贴用地范围。", "Draw, upload or paste a site."),
    "position": ("位置", "position"), "inside_pct": ("线内比例(%)", "inside (%)"), "class": ("地类", "class"),
    "share": ("占用地(%)", "of site (%)"), "distance": ("距离(m)", "distance (m)"),
    "length_inside": ("用地内长度(m)", "length inside (m)"), "checked_at": ("核查时间", "Checked at"),
    "hash": ("内容校验码", "Content hash"), "plan_versions": ("规划版本", "Plan versions"),
    "position_inside": ("线内", "inside"), "position_outside": ("线外", "outside"), "position_both": ("跨线", "both"),
    "position_unknown": ("未知", "unknown"), "slivers": ("容差压盖碎片", "Slivers suppressed"),
    "status_hit": ("违反", "broken"), "status_unknown": ("无法计算", "not computed"),
}


def _read_site() -> Any:
    crs = (request.form.get("crs") or "").strip() or None
    upload = request.files.get("site_file")
    text = (request.form.get("site_text") or "").strip()
    if upload is not None and upload.filename:
        with saved_upload(upload) as path:
            return read_site(path, crs=crs)
    if not text:
        raise InputError("site_nothing_given")
    if text.startswith("{") or text[:12].upper().startswith(("POLYGON", "MULTIPOLYGON", "SRID=")):
        return site_from_text(text, crs=crs)
    with tempfile.TemporaryDirectory(prefix="multiplan-site-") as tmp:
        path = Path(tmp) / "界址点.txt"  # a pasted coordinate table reads as a table file does
        path.write_text(text, "utf-8")
        return read_site(path, crs=crs)


@bp.route("/", methods=["GET"])
@requires("officer")
def index() -> Any:
    approvals = [a for a in list_approvals(get_store()) if a["status"] in ("submitted", "under_review")]
    return render_template("sitecheck/index.html", approvals=approvals, chosen=request.args.get("approval"))


@bp.route("/", methods=["POST"])
@requires("officer")
def run() -> Any:
    store = get_store()
    site = _read_site()
    as_of = (request.form.get("as_of") or "").strip() or None
    use = request.form.get("use", "construction")
    if use not in ("construction", "network"):
        abort(400)
    code = (request.form.get("approval") or "").strip() or None
    dem = current_app.config.get("DEM")
    report = check_site(site, store, as_of=as_of, rasters={"dem": dem} if dem else None, project_use=use)
    check_id = record_check(store, report, site.geometry, code, actor=g.user["username"])
    return redirect(url_for("sitecheck.result", check_id=check_id))


def _check(check_id: int) -> dict[str, Any]:
    return get_check(get_store(), check_id)


@bp.route("/<int:check_id>")
@requires("officer")
def result(check_id: int) -> Any:
    check = _check(check_id)
    report = check["report"]
    features = [{"type": "Feature", "geometry": report["site"]["geometry"],
                 "properties": {"verdict": report["verdict"], "kind": "site"}}]
    open_approvals = [a for a in list_approvals(get_store()) if a["status"] in ("submitted", "under_review")]
    terrain = [((TERRAIN_LABELS.get(k) or (k, k))[1 if language() == "en" else 0], v)
               for k, v in report["terrain"].items() if k != "status"]
    return render_template("sitecheck/result.html", check=check, r=report, approvals=open_approvals,
                           terrain=terrain, geojson={"type": "FeatureCollection", "features": features})


@bp.route("/<int:check_id>/report.<fmt>")
@requires("officer")
def download(check_id: int, fmt: str) -> Any:
    report = _check(check_id)["report"]
    name = f"site-check-{check_id}"
    if fmt == "json":
        body, mime = canonical_json(report), "application/json"
    elif fmt == "html":
        body, mime = render_html(report, language(), get_store()), "text/html; charset=utf-8"
    elif fmt == "pdf":
        body, mime = render_pdf(report, language(), get_store()), "application/pdf"
    else:
        abort(404)
    response = Response(body, mimetype=mime)
    if fmt != "html":
        response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    else:  # the report's own images are inline data: allow them, nothing else
        response.headers["Content-Security-Policy"] = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return response


@bp.route("/<int:check_id>/attach", methods=["POST"])
@requires("officer")
def attach(check_id: int) -> Any:
    """Checks are immutable: filing one under an approval stores it again, linked, with the same content."""
    check = _check(check_id)
    code = (request.form.get("approval") or "").strip()
    if not code:
        abort(400)
    new_id = record_check(get_store(), check["report"], check["site"], code, actor=g.user["username"])
    flash(t("attached", code=code))
    return redirect(url_for("sitecheck.result", check_id=new_id))

