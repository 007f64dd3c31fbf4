"""The site-check report officers file: HTML and PDF, in the sections of practice, with a map and a chart.

Sections: 法规政策符合性 (rules), 三线协调分析 (control lines), 总体规划符合性 (the master plan),
专项规划符合性 (the special plans, networks, terrain) and 小结 (verdict and what it rests on).
Every value from data is escaped; the map is drawn by matplotlib from the plan versions the check used.
"""

from __future__ import annotations

import html
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from multiplan.crs import STORAGE_CRS
from multiplan.reports import CLASS_COLOURS, PLOT_LOCK, VERDICT_COLOURS, png_data_uri, pyplot
from multiplan.store.base import PlanStore

_W = {
    "title": ("建设项目用地合规性审查报告", "Project site compliance report"),
    "legal": ("一、法规政策符合性", "1. Legal and policy compliance"),
    "lines": ("二、三线协调分析", "2. The three control lines"),
    "overall": ("三、国土空间总体规划符合性", "3. Conformity with the master plan"),
    "special": ("四、专项规划符合性", "4. Conformity with the special plans"),
    "summary": ("五、小结", "5. Summary"),
    "site": ("项目用地", "Project site"), "area": ("用地面积", "Site area"), "verdict": ("审查结论", "Verdict"),
    "map": ("用地位置与规划叠加图", "The site over the plans"), "chart": ("各规划地类占用地比例", "Share of the site by plan class"),
    "none": ("无", "none"), "networks": ("五网廊道(影响范围内)", "Five-network corridors within reach"),
    "terrain": ("地形(DEM)", "Terrain (DEM)"), "conflicts": ("涉及的规划冲突图斑", "Plan conflicts the site touches"),
    "slivers": ("容差压盖碎片", "Slivers suppressed by tolerances"), "versions": ("所用规划版本", "Plan versions used"),
    "unknown": ("无法计算、需人工核查", "Could not be computed: needs manual review"),
    "missing": ("缺少的规划图层", "Plan layers missing"), "rule_set": ("规则集", "Rule set"),
    "hash": ("报告内容校验码", "Report content hash"), "findings_none": ("未发现违反规则的情形。", "No rule is broken."),
    "compliance": ("符合性面积", "Conformity by area"), "as_of": ("审查基准日", "Checked as of"),
    "current": ("当前版本", "current versions"),
}
_COLS = {
    "rule": ("规则", "rule"), "title": ("名称", "title"), "severity": ("严重程度", "severity"),
    "area_m2": ("面积(㎡)", "area (m²)"), "area_ha": ("面积(公顷)", "area (ha)"), "area_mu": ("面积(亩)", "area (mu)"),
    "site_percent": ("占用地比例(%)", "% of site"), "patch_percent": ("占图斑比例(%)", "% of patch"),
    "basis": ("依据", "basis"), "message": ("说明", "message"), "layer": ("规划", "plan"),
    "class_code": ("地类代码", "class code"), "class_name": ("地类名称", "class"), "zone": ("分区", "zone"),
    "line": ("控制线", "control line"), "position": ("位置关系", "position"), "inside_m2": ("线内面积(㎡)", "inside (m²)"),
    "inside_percent": ("线内比例(%)", "inside (%)"), "feature": ("要素", "feature"), "corridor_m": ("廊道宽度(m)", "corridor (m)"),
    "distance_m": ("距离(m)", "distance (m)"), "length_inside_m": ("用地内长度(m)", "length inside (m)"),
    "corridor_area_m2": ("廊道内面积(㎡)", "corridor area inside (m²)"), "conflict_id": ("冲突编号", "conflict"),
    "status": ("状态", "status"), "area_in_site_m2": ("用地内面积(㎡)", "area in site (m²)"),
    "compliant_m2": ("符合(㎡)", "conforming (m²)"), "conditional_m2": ("有条件(㎡)", "conditional (m²)"),
    "non_compliant_m2": ("不符合(㎡)", "not conforming (m²)"), "uncovered_m2": ("未覆盖(㎡)", "not covered (m²)"),
    "version": ("版本", "version"), "loaded_at": ("入库时间", "loaded"), "measure": ("指标", "measure"),
    "value": ("数值", "value"), "reason": ("原因", "reason"),
}
_VERDICT = {"compliant": ("符合", "compliant"), "conditional": ("有条件符合", "conditional"),
            "prohibited": ("不符合(禁止)", "prohibited"), "unknown": ("无法判定,需人工核查", "unknown: needs manual review")}
_SEVERITY = {"forbidden": ("禁止", "forbidden"), "major": ("重大", "major"), "conditional": ("有条件", "conditional"),
             "notice": ("提示", "notice")}
_POSITION = {"inside": ("线内", "inside"), "outside": ("线外", "outside"), "both": ("跨线", "both sides"),
             "unknown": ("未知", "unknown")}
TERRAIN_LABELS = {"cells": ("栅格单元数", "cells"), "cell_size": ("单元大小", "cell size"),
            "elevation_min_m": ("最低高程(m)", "lowest elevation (m)"),
            "elevation_max_m": ("最高高程(m)", "highest elevation (m)"),
            "elevation_mean_m": ("平均高程(m)", "mean elevation (m)"), "slope_mean_deg": ("平均坡度(°)", "mean slope (°)"),
            "slope_max_deg": ("最大坡度(°)", "steepest slope (°)"),
            "slope_over_15_percent": ("坡度>15°比例(%)", "slope > 15° (%)"),
            "slope_over_25_percent": ("坡度>25°比例(%)", "slope > 25° (%)"),
            "no_data_percent": ("无数据比例(%)", "no data (%)"), "reason": ("原因", "reason")}


def _t(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def _w(key: str, lang: str) -> str:
    return _t(_W[key], lang)


def _text(value: Any, lang: str) -> str:
    """A bilingual {zh, en} value, or anything else, as escaped text."""
    if isinstance(value, dict) and {"zh", "en"} <= value.keys():
        value = value[lang if lang == "en" else "zh"]
    if isinstance(value, float):
        return f"{value:,.2f}"
    return html.escape("" if value is None else str(value))


def _table(rows: list[dict[str, Any]], columns: list[str], lang: str) -> str:
    if not rows:
        return f"<p>{_w('none', lang)}</p>"
    head = "".join(f"<th>{html.escape(_t(_COLS.get(c, (c, c)), lang))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_text(r.get(c), lang)}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _colour(code: str | None) -> str:
    return CLASS_COLOURS.get((code or "").split("|")[0][:2], "#d5dbdb")


def _figures(report: dict[str, Any], store: PlanStore | None, lang: str) -> tuple[str, str]:
    plt = pyplot()
    from matplotlib.patches import Patch

    site = shapely.geometry.shape(report["site"]["geometry"])
    minx, miny, maxx, maxy = site.bounds
    pad = max(maxx - minx, maxy - miny) * 0.6 + 0.001
    view = (minx - pad, miny - pad, maxx + pad, maxy + pad)
    fig, ax = plt.subplots(figsize=(7, 7))
    handles = []
    if store is not None and report["plan_versions"]:
        versions = {k: v["version"] for k, v in report["plan_versions"].items()}
        near = {layer: store.read_features(layer, number, bbox=view) for layer, number in versions.items()}
        base = next((lid for lid in ("overall", "land_use", "urban") if lid in near and not near[lid].empty), None)
        if base:
            frame = near[base]
            frame.plot(ax=ax, color=[_colour(c) for c in frame["ydyh_code"]], edgecolor="#ffffff", linewidth=0.3)
            seen = sorted({(c or "").split("|")[0][:2] for c in frame["ydyh_code"]})
            handles += [Patch(color=_colour(c), label=c) for c in seen if c]
        overlays = (("eco_redline", None, "#c0392b", "///", _t(("生态保护红线", "red line"), lang)),
                    ("farmland", None, "#b7950b", "\\\\\\", _t(("永久基本农田", "basic farmland"), lang)))
        for lid, _zones, colour, hatch, label in overlays:
            if lid in near and not near[lid].empty:
                near[lid].plot(ax=ax, facecolor="none", edgecolor=colour, hatch=hatch, linewidth=0.8)
                handles.append(Patch(facecolor="none", edgecolor=colour, hatch=hatch, label=label))
        if "overall" in near and not near["overall"].empty:
            inside = near["overall"][near["overall"]["zone_code"].isin(["04", "041", "042", "043"])]
            if not inside.empty:
                gpd.GeoSeries([shapely.union_all(inside.geometry.values)], crs=STORAGE_CRS).boundary.plot(
                    ax=ax, color="#6c3483", linestyle="--", linewidth=1.2)
                handles.append(Patch(facecolor="none", edgecolor="#6c3483", linestyle="--",
                                     label=_t(("城镇开发边界", "urban boundary"), lang)))
        for lid in ("road", "fiber", "power", "gas", "water"):
            if lid in near and not near[lid].empty:
                near[lid].plot(ax=ax, linewidth=1.0, color="#34495e")
    gpd.GeoSeries([site], crs=STORAGE_CRS).boundary.plot(ax=ax, color="#000000", linewidth=2.4)
    handles.append(Patch(facecolor="none", edgecolor="#000000", linewidth=2.4, label=_w("site", lang)))
    ax.set_xlim(view[0], view[2])
    ax.set_ylim(view[1], view[3])
    ax.set_aspect(1 / np.cos(np.radians((miny + maxy) / 2)))
    ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.85)
    ax.set_title(_w("map", lang))
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(useOffset=False)
    map_png = png_data_uri(fig)

    layers = [lid for lid in dict.fromkeys(r["layer"] for r in report["overlaps"])]
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.45 * len(layers) + 1)))
    for i, lid in enumerate(layers):
        left = 0.0
        for row in [r for r in report["overlaps"] if r["layer"] == lid]:
            ax.barh(i, row["site_percent"], left=left, color=_colour(row["unified_code"]), edgecolor="white")
            if row["site_percent"] >= 8:
                ax.text(left + row["site_percent"] / 2, i, row["class_code"] or "", ha="center", va="center", fontsize=7)
            left += row["site_percent"]
    ax.set_yticks(range(len(layers)), [_text(_layer_title(report, lid), lang) for lid in layers])
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    ax.set_title(_w("chart", lang))
    return map_png, png_data_uri(fig)


def _layer_title(report: dict[str, Any], layer: str) -> Any:
    return next((entry["title"] for entry in report["layers"] if entry["layer"] == layer), layer)


def render_html(report: dict[str, Any], lang: str = "zh", store: PlanStore | None = None) -> str:
    """The report as one self-contained HTML page (images inlined)."""
    with PLOT_LOCK:
        map_png, chart_png = _figures(report, store, lang)
    verdict = report["verdict"]
    site = report["site"]
    findings = [{**f, "title": f["title"], "severity": _t(_SEVERITY[f["severity"]], lang),
                 "area_m2": f["area_m2"], "basis": f["basis"], "message": f["message"] if f["status"] == "hit"
                 else _w("unknown", lang) + f" ({f.get('reason')})"} for f in report["findings"]]
    overall_rows = [_overlap_row(r) for r in report["overlaps"] if r["layer"] == "overall"]
    special_rows = [_overlap_row(r) for r in report["overlaps"] if r["layer"] != "overall"]
    for row in special_rows:
        row["layer"] = _layer_title(report, row["layer"])
    lines = [{**c, "line": c["name"], "position": _t(_POSITION[c["position"]], lang)} for c in report["control_lines"]]
    terrain = report["terrain"]
    terrain_rows = [{"measure": _t(TERRAIN_LABELS.get(k, (k, k)), lang), "value": v} for k, v in terrain.items()
                    if k != "status"]
    networks = [{**n, "layer": n["title"]} for n in report["networks"]]
    conflicts = [{**c, "severity": _t(_SEVERITY.get(c["severity"], (c["severity"],) * 2), lang)}
                 for c in report["conflicts"]]
    versions = [{"layer": _layer_title(report, k), "version": v["version"], "loaded_at": v["loaded_at"]}
                for k, v in report["plan_versions"].items()]
    verdict_text = _t(_VERDICT[verdict], lang)
    head = (f"<p><b>{_w('area', lang)}</b>: {site['area_m2']:,.2f} ㎡ = {site['area_ha']:,.4f} ha = "
            f"{site['area_mu']:,.2f} {_t(('亩', 'mu'), lang)} · <b>{_w('as_of', lang)}</b>: "
            f"{_text(report['as_of'] or _w('current', lang), lang)}</p>"
            f"<p class='verdict' style='border-color:{VERDICT_COLOURS[verdict]}'><b>{_w('verdict', lang)}</b>: "
            f"<span style='color:{VERDICT_COLOURS[verdict]}'>{html.escape(verdict_text)}</span></p>"
            f"<p><img alt='map' src='{map_png}'></p>")
    sections = [
        f"<h2>{_w('legal', lang)}</h2>" + (_table(findings, ["rule", "title", "severity", "area_m2", "basis", "message"],
                                                  lang) if findings else f"<p>{_w('findings_none', lang)}</p>"),
        f"<h2>{_w('lines', lang)}</h2>" + _table(lines, ["line", "position", "inside_m2", "inside_percent"], lang),
        f"<h2>{_w('overall', lang)}</h2>"
        + _table(overall_rows, ["class_code", "class_name", "zone", "area_m2", "area_ha", "area_mu", "site_percent",
                                "patch_percent"], lang)
        + f"<h3>{_w('compliance', lang)}</h3>"
        + _table([{**c, "layer": _layer_title(report, c["layer"])} for c in report["compliance"]],
                 ["layer", "compliant_m2", "conditional_m2", "non_compliant_m2", "uncovered_m2"], lang),
        f"<h2>{_w('special', lang)}</h2><p><img alt='chart' src='{chart_png}'></p>"
        + _table(special_rows, ["layer", "class_code", "class_name", "zone", "area_m2", "area_ha", "area_mu",
                                "site_percent", "patch_percent"], lang)
        + f"<h3>{_w('networks', lang)} ({report['reach_m']:g} m)</h3>"
        + _table(networks, ["layer", "feature", "corridor_m", "distance_m", "length_inside_m", "corridor_area_m2"], lang)
        + f"<h3>{_w('terrain', lang)}</h3>" + _table(terrain_rows, ["measure", "value"], lang)
        + f"<h3>{_w('conflicts', lang)}</h3>"
        + _table(conflicts, ["conflict_id", "rule", "severity", "status", "area_in_site_m2"], lang),
        f"<h2>{_w('summary', lang)}</h2><p><b>{_w('verdict', lang)}</b>: {html.escape(verdict_text)}"
        + (f" ({html.escape(', '.join(report['verdict_rules']))})" if report["verdict_rules"] else "") + "</p>"
        + f"<p><b>{_w('slivers', lang)}</b>: {report['slivers']['count']} · {report['slivers']['area_m2']:,.2f} ㎡</p>"
        + (f"<p><b>{_w('unknown', lang)}</b>: {html.escape(', '.join(str(u) for u in report['unknown']))}</p>"
           if report["unknown"] else "")
        + (f"<p><b>{_w('missing', lang)}</b>: {html.escape(', '.join(report['missing_layers']))}</p>"
           if report["missing_layers"] else "")
        + f"<h3>{_w('versions', lang)}</h3>" + _table(versions, ["layer", "version", "loaded_at"], lang)
        + f"<p><small>{_w('rule_set', lang)} sha256 {html.escape(report['rule_set_sha256'])}<br>"
        + f"{_w('hash', lang)} sha256 {html.escape(report['content_sha256'])}</small></p>",
    ]
    title = _w("title", lang)
    style = ("body{font-family:'WenQuanYi Micro Hei','Noto Sans CJK SC',sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:85%}"
             "th{background:#f0f0f0}img{max-width:100%}.verdict{border-left:6px solid;padding:.4em .8em;"
             "font-size:120%;background:#fafafa}@page{size:A4;margin:15mm}")
    return (f"<!DOCTYPE html><html lang='{'en' if lang == 'en' else 'zh-CN'}'><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>{style}</style></head><body><h1>{title}</h1>{head}"
            f"{''.join(sections)}</body></html>")


def _overlap_row(row: dict[str, Any]) -> dict[str, Any]:
    zone = row.get("zone_name") or row.get("zone_code")
    return {**row, "zone": zone}


def render_pdf(report: dict[str, Any], lang: str = "zh", store: PlanStore | None = None) -> bytes:
    """The HTML report printed to PDF by WeasyPrint (CJK text needs fonts-wqy-microhei or Noto CJK)."""
    import weasyprint

    return weasyprint.HTML(string=render_html(report, lang, store)).write_pdf()
