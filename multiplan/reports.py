"""Batch conflict reports for the province and each county: HTML (tables, charts, a map), CSV, XLSX, GeoPackage."""

from __future__ import annotations

import base64
import html
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from multiplan.detection import run_detection
from multiplan.onemap import build_one_map, class_areas, conflict_areas, two_plan_differences
from multiplan.store.base import PlanStore

#: The colours of every map and chart: conflicts by severity, site checks by verdict, and the 24 class
#: groups of 用地用海分类 (first two digits of the unified code).
SEVERITY_COLOURS = {"forbidden": "#c0392b", "major": "#e67e22", "conditional": "#f1c40f", "notice": "#7f8c8d"}
VERDICT_COLOURS = {"compliant": "#1e8449", "conditional": "#b9770e", "prohibited": "#c0392b", "unknown": "#7f8c8d"}
CLASS_COLOURS = {
    "01": "#f3e98a", "02": "#c8e07a", "03": "#5fa35a", "04": "#a9d47c", "05": "#7fc7c1", "06": "#d8c38a",
    "07": "#ffc66e", "08": "#f08fb0", "09": "#e8584f", "10": "#a8826a", "11": "#9d85d6", "12": "#a3a3a3",
    "13": "#4f8fc9", "14": "#6cc24a", "15": "#4d7352", "16": "#e6e6e6", "17": "#58b6e6", "18": "#a6d8f0",
    "19": "#8aa0c8", "20": "#b7c6dd", "21": "#7fd3c9", "22": "#6c8ebf", "23": "#d8cfc0", "24": "#d6ecf7",
}
_WORDS = {
    "title": ("多规合一冲突检测报告", "Multi-plan conflict report"),
    "province": ("全省", "Province"),
    "versions": ("规划版本", "Plan versions"),
    "rules": ("规则检测结果", "Findings by rule"),
    "tolerance": ("容差与压盖碎片", "Tolerances and what they suppressed"),
    "classes": ("各规划用地用海分类面积", "Area by unified class per plan"),
    "two_plan": ("两规差异", "Two-plan differences"),
    "conflicts": ("冲突面积(按规则)", "Conflict area by rule"),
    "warnings": ("指标预警", "Indicator warnings"),
    "map": ("冲突分布图", "Map of conflicts"),
    "chart": ("各规则冲突面积(公顷)", "Conflict area by rule (ha)"),
    "none": ("无", "none"),
}
_COLUMNS = {
    "rule": ("规则", "rule"), "title": ("名称", "title"), "severity": ("严重程度", "severity"),
    "patches": ("图斑数", "patches"), "area_ha": ("面积(公顷)", "area (ha)"), "min_area_m2": ("最小面积(平方米)", "min area (m²)"),
    "suppressed_count": ("压盖碎片数", "slivers suppressed"), "suppressed_m2": ("压盖面积(平方米)", "suppressed (m²)"),
    "unknown": ("待人工核查", "needs manual review"), "layer": ("规划", "plan"), "class": ("分类", "class"),
    "xzqdm": ("行政区代码", "admin code"), "version": ("版本", "version"), "indicator": ("指标", "indicator"),
    "value_ha": ("现值(公顷)", "value (ha)"), "target_ha": ("目标(公顷)", "target (ha)"),
}


def _w(key: str, lang: str) -> str:
    zh, en = _WORDS[key]
    return en if lang == "en" else zh


def _table(frame: pd.DataFrame, lang: str) -> str:
    if frame.empty:
        return f"<p>{_w('none', lang)}</p>"
    head = "".join(f"<th>{html.escape(_COLUMNS.get(c, (c, c))[1 if lang == 'en' else 0])}</th>" for c in frame.columns)
    rows = []
    severities = {"forbidden": "禁止", "major": "重大", "conditional": "有条件", "notice": "提示"}
    for row in frame.itertuples(index=False):
        shown = [severities.get(v, v) if lang == "zh" and c == "severity" else v for c, v in zip(frame.columns, row,
                                                                                                strict=True)]
        cells = "".join(f"<td>{html.escape(f'{v:,.2f}' if isinstance(v, float) else str(v))}</td>" for v in shown)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


#: matplotlib's pyplot keeps global state: web servers draw from several threads, one figure at a time.
PLOT_LOCK = threading.RLock()


def pyplot() -> Any:
    """matplotlib's pyplot, off-screen, with CJK fonts first (call it holding PLOT_LOCK)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # CJK labels need a CJK font (Debian: fonts-wqy-microhei, installed by scripts/setup_env.sh)
    plt.rcParams["font.sans-serif"] = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def png_data_uri(fig: Any, dpi: int = 110) -> str:
    """A figure as a PNG data URI (pages stay self-contained), the figure closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figures(rules: pd.DataFrame, one_map: gpd.GeoDataFrame, patches: gpd.GeoDataFrame, lang: str) -> tuple[str, str]:
    plt = pyplot()
    shown = rules[rules["area_ha"] > 0].sort_values("area_ha")
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.3 * len(shown) + 1)))
    ax.barh(shown["title"], shown["area_ha"], color=[SEVERITY_COLOURS[s] for s in shown["severity"]])
    ax.set_xlabel(_w("chart", lang))
    chart = png_data_uri(fig)
    fig, ax = plt.subplots(figsize=(7, 7))
    one_map.boundary.plot(ax=ax, linewidth=0.2, color="#95a5a6")
    for severity in reversed(list(SEVERITY_COLOURS)):
        part = patches[patches["severity"] == severity] if not patches.empty else patches
        if not part.empty:
            part.plot(ax=ax, color=SEVERITY_COLOURS[severity], label=severity)
    ax.set_axis_off()
    ax.set_title(_w("map", lang))
    return chart, png_data_uri(fig)


def _scope(one_map: gpd.GeoDataFrame, patches: gpd.GeoDataFrame, county: str | None
           ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    if county is None:
        return one_map, patches
    return one_map[one_map["xzqdm"] == county], patches[patches["xzqdm"] == county] if not patches.empty else patches


def _rules_table(run: dict[str, Any], patches: gpd.GeoDataFrame, lang: str) -> pd.DataFrame:
    rows = []
    for r in run["rules"]:
        mine = patches[patches["rule"] == r["rule"]] if not patches.empty else patches
        area = float(mine["area_m2"].sum()) if r["kind"] != "coverage" else r["area_m2"]
        rows.append({"rule": r["rule"], "title": r["title_en" if lang == "en" else "title_zh"],
                     "severity": r["severity"], "patches": len(mine) if r["kind"] != "coverage" else r["patches"],
                     "area_ha": area / 1e4, "min_area_m2": float(r["tolerance"].get("min_area_m2", 0)),
                     "suppressed_count": r["suppressed"]["count"], "suppressed_m2": r["suppressed"]["area_m2"],
                     "unknown": len(r["unknown"])})
    return pd.DataFrame(rows)


def write_reports(store: PlanStore, out_dir: str | Path, lang: str = "zh", county: str | None = None,
                  dem: str | Path | None = None, progress: Callable[[str, int, int], None] | None = None) -> list[Path]:
    """Write the province report and one per county (or only ``county``); return the report folders."""
    out_dir = Path(out_dir)
    run = run_detection(store, rasters={"dem": dem} if dem else None)
    frames = {lid: store.read_features(lid, v) for lid, v in run["versions"].items()}
    patches = run["patches"]
    one_map = build_one_map(frames, patches)
    counties = sorted(c for c in one_map["xzqdm"].dropna().unique() if county in (None, c))
    scopes: list[str | None] = ([None] if county is None else []) + counties
    written = []
    for i, scope in enumerate(scopes):
        folder = out_dir / (scope or "province")
        folder.mkdir(parents=True, exist_ok=True)
        faces, mine = _scope(one_map, patches, scope)
        tables = {
            "rules": _rules_table(run, mine, lang),
            "classes": class_areas(faces).assign(area_ha=lambda t: t["area_m2"] / 1e4).drop(columns="area_m2"),
            "two_plan": two_plan_differences(faces).drop(columns="area_m2", errors="ignore"),
            "conflicts": conflict_areas(faces).drop(columns="area_m2", errors="ignore"),
            "warnings": pd.DataFrame([{"indicator": w["indicator"], "layer": w["layer"], "version": w["version"],
                                       "xzqdm": w["scope"], "value_ha": w["value_m2"] / 1e4,
                                       "target_ha": w["target_m2"] / 1e4} for w in run["warnings"]
                                      if scope is None or w["scope"] in (scope, "*")]),
        }
        for name, table in tables.items():
            table.to_csv(folder / f"{name}.csv", index=False, encoding="utf-8-sig")
        with pd.ExcelWriter(folder / "report.xlsx") as xlsx:
            for name, table in tables.items():
                table.to_excel(xlsx, sheet_name=name, index=False)
        gpkg = folder / "conflicts.gpkg"
        gpkg.unlink(missing_ok=True)
        if not mine.empty:
            mine.to_file(gpkg, layer="conflicts", engine="pyogrio")
        faces.to_file(gpkg, layer="one_map", engine="pyogrio")
        with PLOT_LOCK:
            chart, map_png = _figures(tables["rules"], faces, mine, lang)
        (folder / "report.html").write_text(_html(run, scope, tables, chart, map_png, lang), "utf-8")
        written.append(folder)
        if progress:
            progress("reports", i + 1, len(scopes))
    return written


def _html(run: dict[str, Any], scope: str | None, tables: dict[str, pd.DataFrame], chart: str, map_png: str,
          lang: str) -> str:
    title = f"{_w('title', lang)} — {html.escape(scope or _w('province', lang))}"
    versions = ", ".join(f"{html.escape(k)} v{v}" for k, v in run["versions"].items())
    sections = [f"<h2>{_w('versions', lang)}</h2><p>{versions}<br><small>rule set sha256 {run['rule_set_sha256']}</small></p>",
                f"<h2>{_w('rules', lang)}</h2><p><img alt='chart' src='{chart}'></p>{_table(tables['rules'], lang)}",
                f"<h2>{_w('tolerance', lang)}</h2>{_table(tables['rules'][['rule', 'min_area_m2', 'suppressed_count', 'suppressed_m2']], lang)}",
                f"<h2>{_w('map', lang)}</h2><p><img alt='map' src='{map_png}'></p>",
                f"<h2>{_w('two_plan', lang)}</h2>{_table(tables['two_plan'], lang)}",
                f"<h2>{_w('conflicts', lang)}</h2>{_table(tables['conflicts'], lang)}",
                f"<h2>{_w('classes', lang)}</h2>{_table(tables['classes'], lang)}",
                f"<h2>{_w('warnings', lang)}</h2>{_table(tables['warnings'], lang)}"]
    style = ("body{font-family:'WenQuanYi Micro Hei','Noto Sans CJK SC',sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}"
             "th{background:#f0f0f0}img{max-width:100%}")
    return (f"<!DOCTYPE html><html lang='{'en' if lang == 'en' else 'zh-CN'}'><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>{style}</style></head><body><h1>{title}</h1>{''.join(sections)}</body></html>")
