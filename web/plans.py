"""Planner pages: the plan layers and their versions, uploads with progress, load reports, version diffs.

A load runs in a background thread of the serving process; its progress and outcome are written to a
small JSON file beside the upload, so any worker can answer the browser's polling.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from multiplan.diff import diff_versions
from multiplan.errors import MultiplanError
from multiplan.ingest import NOTE_TEXT, LoadOptions, load_plan
from multiplan.specs import LAYER_IDS, load_layer_specs
from web.access import ANY_USER, requires
from web.i18n import language, t
from web.store import get_store

bp = Blueprint("plans", __name__, url_prefix="/plans")
STRINGS = {
    "plans_title": ("规划成果与版本", "Plans and their versions"),
    "layer": ("图层", "Layer"), "version": ("版本", "Version"), "versions": ("版本", "Versions"),
    "features": ("要素数", "Features"), "loaded_at": ("入库时间", "Loaded"), "loaded_by": ("入库人", "By"),
    "source": ("来源文件", "Source file"), "label": ("说明", "Label"), "crs": ("坐标系", "CRS"),
    "encoding": ("编码", "Encoding"), "guessed": ("自动识别", "guessed"), "no_versions": ("尚无版本", "no version yet"),
    "upload_title": ("上传规划成果", "Upload a plan"), "upload_file": ("文件(zip 压缩的 shapefile、GeoPackage 或 GeoJSON)",
                                                                  "File (zipped shapefile, GeoPackage or GeoJSON)"),
    "upload_button": ("上传并入库", "Upload and load"), "upload_crs": ("坐标系(可选,如 EPSG:4525)", "CRS (optional, e.g. EPSG:4525)"),
    "upload_encoding": ("编码(可选,如 GBK)", "Encoding (optional, e.g. GBK)"),
    "uploading": ("正在上传…", "Uploading…"), "loading": ("正在检查并入库…", "Checking and loading…"),
    "load_failed": ("入库失败,存储未改变:", "The load failed; the store is unchanged:"),
    "report_title": ("入库报告", "Load report"), "read": ("读取", "read"), "loaded": ("入库", "loaded"),
    "rejected": ("拒绝", "rejected"), "repaired": ("修复", "repaired"), "deleted_records": ("已删除记录", "deleted records"),
    "notes": ("提示", "Notes"), "rejections": ("拒绝的要素", "Rejected features"), "repairs": ("修复的要素", "Repaired features"),
    "unknown_codes": ("未知分类代码(已保留)", "Unknown class codes (kept)"), "quality": ("图层内质量检查", "Quality inside the plan"),
    "overlaps": ("重叠", "overlaps"), "gaps": ("缝隙", "gaps"), "area_by_class": ("各分类面积", "Area by class"),
    "warnings": ("指标预警", "Indicator warnings"), "code": ("代码", "code"), "name": ("名称", "name"),
    "area_ha": ("面积(公顷)", "area (ha)"), "length_km": ("长度(千米)", "length (km)"), "p_reason": ("原因", "reason"),
    "detail": ("说明", "detail"), "feature": ("要素", "feature"), "diff_title": ("版本对比", "Compare versions"),
    "compare": ("对比", "Compare"), "added": ("新增", "added"), "removed": ("删除", "removed"),
    "geometry_changed": ("图形变化", "geometry changed"), "attributes_changed": ("属性变化", "attributes changed"),
    "class_balance": ("地类调入调出", "Area moved between classes"), "in_ha": ("调入(公顷)", "in (ha)"),
    "out_ha": ("调出(公顷)", "out (ha)"), "net_ha": ("净变化(公顷)", "net (ha)"),
    "before": ("修复前(㎡)", "before (m²)"), "after": ("修复后(㎡)", "after (m²)"),
}
_JOB_NAME = re.compile(r"^[0-9a-f]{32}$")


def _layer(layer: str) -> str:
    if layer not in LAYER_IDS:  # ids come from the fixed list, never from the request as such
        abort(404)
    return layer


def upload_name(filename: str) -> str:
    """A safe file name that keeps Chinese: werkzeug's secure_filename turns 规划成果.zip into "zip"."""
    name = unicodedata.normalize("NFC", filename or "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*\x00')
    name = name.strip(" .")[:120]
    return name or "upload"


@contextmanager
def saved_upload(upload: Any) -> Iterator[Path]:
    """An uploaded file saved under its own (Chinese-preserving) name in a folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="multiplan-upload-") as tmp:
        path = Path(tmp) / upload_name(upload.filename)
        upload.save(path)
        yield path


@bp.route("/")
@requires(*ANY_USER)
def index() -> Any:
    store = get_store()
    specs = load_layer_specs()
    versions = store.versions()
    rows = [{"id": lid, "spec": specs[lid], "versions": [v for v in versions if v.layer == lid]} for lid in LAYER_IDS]
    return render_template("plans/index.html", rows=rows)


@bp.route("/<layer>/<int:version>")
@requires(*ANY_USER)
def report(layer: str, version: int) -> Any:
    v = get_store().version(_layer(layer), version)
    spec = load_layer_specs()[layer]
    notes = [NOTE_TEXT.get(n, (n, n))[1 if language() == "en" else 0] for n in v.report.get("notes", [])]
    return render_template("plans/report.html", v=v, spec=spec, r=v.report, notes=notes)


@bp.route("/<layer>/diff")
@requires(*ANY_USER)
def diff(layer: str) -> Any:
    store = get_store()
    versions = [v.version for v in store.versions(_layer(layer))]
    result = None
    v1, v2 = request.args.get("from", type=int), request.args.get("to", type=int)
    if v1 and v2:
        if v1 not in versions or v2 not in versions:
            abort(404)
        result = diff_versions(store, layer, v1, v2)
    return render_template("plans/diff.html", layer=layer, spec=load_layer_specs()[layer], versions=versions,
                           result=result, v1=v1, v2=v2)


@bp.route("/upload", methods=["GET"])
@requires("planner")
def upload_form() -> Any:
    return render_template("plans/upload.html", specs=load_layer_specs(), layer=request.args.get("layer"))


@bp.route("/upload", methods=["POST"])
@requires("planner")
def upload() -> Any:
    """Save the file under its own (Chinese-preserving) name and load it in the background."""
    layer = _layer(request.form.get("layer", ""))
    file = request.files.get("file")
    if file is None or not file.filename:
        abort(400)
    job = uuid.uuid4().hex
    folder = Path(current_app.config["UPLOAD_DIR"]) / job
    folder.mkdir(parents=True)
    path = folder / upload_name(file.filename)
    file.save(path)
    options = {"crs": (request.form.get("crs") or "").strip() or None,
               "encoding": (request.form.get("encoding") or "").strip() or None,
               "label": (request.form.get("label") or "").strip() or None}
    _write_status(folder, {"state": "queued", "layer": layer, "file": path.name})
    actor = g.user["username"]
    thread = threading.Thread(target=_run_load, name=f"load-{job}", daemon=True,
                              args=(current_app._get_current_object(), folder, layer, path, options, actor,
                                    language()))
    thread.start()
    if request.accept_mimetypes.best == "application/json" or request.headers.get("X-Requested-With"):
        return jsonify({"job": job, "status": url_for("plans.job", job=job)}), 202
    thread.join()  # without JavaScript: wait, then show the outcome
    return redirect(url_for("plans.job_page", job=job))


def _write_status(folder: Path, status: dict[str, Any]) -> None:
    tmp = folder / "status.json.tmp"
    tmp.write_text(json.dumps(status, ensure_ascii=False), "utf-8")
    tmp.replace(folder / "status.json")


def _run_load(app: Any, folder: Path, layer: str, path: Path, options: dict[str, Any], actor: str,
              lang: str) -> None:
    from multiplan.crs import parse_crs_option

    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.monotonic() - last[0] > 0.3 or done >= total:
            last[0] = time.monotonic()
            _write_status(folder, {"state": "running", "layer": layer, "file": path.name, "stage": stage,
                                   "done": done, "total": total})
    with app.app_context():
        store = app.extensions["multiplan_store"]
        try:
            crs = parse_crs_option(options["crs"]) if options["crs"] else None
            report = load_plan(store, layer, path, LoadOptions(crs=crs, encoding=options["encoding"],
                                                               label=options["label"]), progress)
            store.audit("web:load", actor, {"layer": layer, "version": report["version"], "file": path.name})
            _write_status(folder, {"state": "done", "layer": layer, "file": path.name, "version": report["version"]})
        except MultiplanError as exc:
            _write_status(folder, {"state": "failed", "layer": layer, "file": path.name, "message": exc.render(lang)})
        except Exception as exc:  # a bug: say it plainly, keep the details in the log
            app.logger.exception("load failed")
            _write_status(folder, {"state": "failed", "layer": layer, "file": path.name,
                                   "message": f"{type(exc).__name__}: {exc}"})
        finally:
            path.unlink(missing_ok=True)


def _status(job: str) -> dict[str, Any]:
    if not _JOB_NAME.match(job):
        abort(404)
    path = Path(current_app.config["UPLOAD_DIR"]) / job / "status.json"
    if not path.exists():
        abort(404)
    return json.loads(path.read_text("utf-8"))


@bp.route("/jobs/<job>")
@requires("planner")
def job(job: str) -> Any:
    status = _status(job)
    if status["state"] == "done":
        status["report"] = url_for("plans.report", layer=status["layer"], version=status["version"])
    return jsonify(status)


@bp.route("/jobs/<job>/page")
@requires("planner")
def job_page(job: str) -> Any:
    status = _status(job)
    if status["state"] == "done":
        return redirect(url_for("plans.report", layer=status["layer"], version=status["version"]))
    return render_template("plans/job.html", status=status, failed_text=t("load_failed"))
