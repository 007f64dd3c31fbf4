"""The statistics dashboard per county: area by unified class per plan, 两规差异, conflicts by rule and
severity, with charts (PNG drawn by matplotlib, inline)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from multiplan.reports import PLOT_LOCK, SEVERITY_COLOURS, png_data_uri, pyplot
from multiplan.statistics import county_statistics
from web.access import ANY_USER, requires
from web.i18n import language
from web.store import get_store

bp = Blueprint("stats", __name__, url_prefix="/stats")
STRINGS = {
    "stats_title": ("统计分析", "Statistics"), "province_all": ("全部行政区", "all counties"),
    "class_by_plan": ("各规划用地用海分类面积(公顷)", "Area by unified class per plan (ha)"),
    "two_plan": ("两规差异(公顷)", "Two-plan differences (ha)"), "by_rule": ("冲突(按规则与严重程度)", "Conflicts by rule and severity"),
    "open_cases": ("未解决", "open"), "cases": ("图斑数", "cases"), "plan": ("规划", "plan"), "group": ("地类", "class"),
    "both_construction": ("两规均为建设用地", "construction in both plans"),
    "both_non_construction": ("两规均为非建设用地", "non-construction in both"),
    "urban_construction_land_use_not": ("城规建设、土规非建设", "urban: construction, land-use: not"),
    "land_use_construction_urban_not": ("土规建设、城规非建设", "land-use: construction, urban: not"),
    "unclear": ("类别不明", "unclear"),
}


def _charts(stats: dict[str, Any], lang: str) -> dict[str, str]:
    import pandas as pd

    plt = pyplot()
    charts = {}
    classes = pd.DataFrame(stats["area_by_class"])
    if not classes.empty:
        label = "group_en" if lang == "en" else "group_zh"
        table = classes.groupby(["layer", label])["area_ha"].sum().unstack(fill_value=0)
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(table) + 1.5))
        table.plot.barh(stacked=True, ax=ax, colormap="tab20", width=0.7)
        ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.15))
        ax.set_xlabel("ha")
        charts["classes"] = png_data_uri(fig, dpi=100)
    rules = pd.DataFrame(stats["conflicts_by_rule"])
    if not rules.empty:
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(rules) + 1.2))
        ax.barh([f"{r} ({s})" for r, s in zip(rules["rule"], rules["severity"], strict=True)], rules["area_ha"],
                color=[SEVERITY_COLOURS.get(s, "#999") for s in rules["severity"]])
        ax.set_xlabel("ha")
        charts["rules"] = png_data_uri(fig, dpi=100)
    return charts


@bp.route("/")
@requires(*ANY_USER)
def index() -> Any:
    county = request.args.get("county") or None
    stats = county_statistics(get_store(), county)
    two_plan: dict[str, float] = {}
    for row in stats["two_plan_differences"]:
        two_plan[row["class"]] = two_plan.get(row["class"], 0.0) + row["area_ha"]
    with PLOT_LOCK:
        charts = _charts(stats, language())
    return render_template("stats.html", s=stats, county=county, two_plan=two_plan, charts=charts)
