"""`multiplan init | load | plans | diff`: the versioned plan store."""

from __future__ import annotations

import json
from typing import Any

import click
from tqdm import tqdm

from multiplan import i18n
from multiplan.cli import cli
from multiplan.crs import parse_crs_option
from multiplan.ingest import NOTE_TEXT, LoadOptions, load_plan, report_json
from multiplan.specs import LAYER_IDS
from multiplan.store import open_store


def _zh() -> bool:
    return i18n.language() == "zh"


def _t(zh: str, en: str) -> str:
    return zh if _zh() else en


class _Bars:
    """tqdm progress bars on stderr (silent when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            desc = {"read": _t("读取与检查", "reading"), "quality": _t("质量检查", "quality check")}.get(stage, stage)
            bar = self.bars[stage] = tqdm(total=total, desc=desc, unit=_t("要素", "features") if stage == "read" else "",
                                          leave=False, disable=None)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@cli.command("init")
@click.pass_obj
def init_command(obj: dict[str, Any]) -> None:
    """Create the store (or migrate it to this version)."""
    with open_store(obj["store"]) as store:
        applied = store.init()
        click.echo(_t(f"存储已就绪: {store.url}", f"store ready: {store.url}"))
        for m in applied:
            click.echo(_t(f"  已应用迁移 {m}", f"  applied migration {m}"))


def print_load_report(report: dict[str, Any]) -> None:
    """The load report as a planner reads it."""
    c = report["counts"]
    crs, enc = report["crs"], report["encoding"]
    guessed = _t("(自动识别)", " (guessed)")
    click.echo(_t(f"【{report['layer']}】{report['file']} → 版本 {report['version']}",
                  f"[{report['layer']}] {report['file']} -> version {report['version']}"))
    click.echo(_t(f"  读取 {c['read']},入库 {c['loaded']},拒绝 {c['rejected']},修复 {c['repaired']},"
                  f"已删除记录 {c['deleted_records']}",
                  f"  read {c['read']}, loaded {c['loaded']}, rejected {c['rejected']}, repaired {c['repaired']}, "
                  f"deleted records {c['deleted_records']}"))
    click.echo(_t("  坐标系 ", "  CRS ") + crs["used"] + (guessed if crs["guessed"] else "")
               + (f" — {crs['note']}" if crs["note"] else "")
               + _t(";编码 ", "; encoding ") + str(enc["used"]) + (guessed if enc["guessed"] else ""))
    for note in report["notes"]:
        click.echo(_t("  提示: ", "  note: ") + NOTE_TEXT.get(note, (note, note))[0 if _zh() else 1])
    for r in report["rejected"][:10]:
        click.echo(_t(f"  拒绝 要素 #{r['feature']}: {r['reason']} ({r['detail']})",
                      f"  rejected feature #{r['feature']}: {r['reason']} ({r['detail']})"))
    for kind, n in report["repairs_by_kind"].items():
        click.echo(_t(f"  修复 {kind}: {n} 个要素", f"  repaired {kind}: {n} features"))
    if report["unknown_codes"]:
        codes = ", ".join(f"{k}×{v}" for k, v in report["unknown_codes"].items())
        click.echo(_t(f"  未知分类代码(已保留原代码,未归类): {codes}", f"  unknown class codes (kept, unclassified): {codes}"))
    q = report["quality"]
    if q.get("checked"):
        click.echo(_t(f"  图层内重叠 {len(q['overlaps'])} 处,缝隙 {len(q['gaps'])} 处",
                      f"  overlaps inside the plan: {len(q['overlaps'])}, gaps: {len(q['gaps'])}"))
    for w in report.get("warnings", []):
        click.echo(_t(f"  ⚠ 预警 {w['title']['zh']}({w['scope']}):{w['value_m2'] / 1e4:,.2f} 公顷,目标 {w['target_m2'] / 1e4:,.2f} 公顷",
                      f"  ! warning {w['title']['en']} ({w['scope']}): {w['value_m2'] / 1e4:,.2f} ha, target {w['target_m2'] / 1e4:,.2f} ha"))
    for row in report["area_by_class"]:
        name = row["name_zh"] if _zh() else row["name_en"]
        measure = (f"{row['area_ha']:.2f} ha / {row['area_mu']:.1f} 亩" if row["area_m2"]
                   else f"{row['length_m'] / 1000:.2f} km")
        click.echo(f"    {row['code'] or '-':<28} {name:<20} {row['features']:>7}  {measure}")




@cli.command("load")
@click.argument("layer", type=click.Choice(LAYER_IDS), metavar="LAYER")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--crs", "crs_text", metavar="EPSG:nnnn", help="The file's CRS, overriding its .prj or detection.")
@click.option("--encoding", help="Attribute encoding (e.g. GBK, UTF-8), overriding .cpg or detection.")
@click.option("--class-field", help="The field holding the class code, when not one the layer spec knows.")
@click.option("--source-layer", help="Layer inside a GeoPackage holding several.")
@click.option("--label", help="A label for the new version (e.g. 2024 修编).")
@click.option("--json", "as_json", is_flag=True, help="Print the load report as JSON.")
@click.pass_obj
def load_command(obj: dict[str, Any], layer: str, file: str, crs_text: str | None, encoding: str | None,
                 class_field: str | None, source_layer: str | None, label: str | None, as_json: bool) -> None:
    """Load FILE as a new version of LAYER (zipped shapefile, .shp, .gpkg or .geojson)."""
    options = LoadOptions(crs=parse_crs_option(crs_text) if crs_text else None, encoding=encoding,
                          class_field=class_field, label=label, source_layer=source_layer, processes=True)
    bars = _Bars()
    try:
        with open_store(obj["store"]) as store:
            report = load_plan(store, layer, file, options, progress=bars)
    finally:
        bars.close()
    if as_json:
        click.echo(report_json(report))
    else:
        print_load_report(report)


@cli.command("plans")
@click.argument("layer", required=False, type=click.Choice(LAYER_IDS), metavar="[LAYER]")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def plans_command(obj: dict[str, Any], layer: str | None, as_json: bool) -> None:
    """List plan versions (of one LAYER, or all)."""
    with open_store(obj["store"]) as store:
        versions = store.versions(layer)
    if as_json:
        click.echo(json.dumps([{k: v for k, v in vars(v).items() if k != "report"} for v in versions],
                              ensure_ascii=False, indent=2))
        return
    if not versions:
        click.echo(_t("还没有任何规划版本。用 multiplan load 入库。", "No plan versions yet. Load one with multiplan load."))
        return
    click.echo(_t("图层          版本  要素      坐标系        编码   入库时间(UTC)                 来源文件  标签",
                  "layer         ver  features  CRS           enc    loaded at (UTC)                  source  label"))
    for v in versions:
        flags = ("*" if v.crs_guessed else " ")
        click.echo(f"{v.layer:<13} {v.version:>3}  {v.n_loaded:>8}  {v.crs:<12}{flags} {v.encoding:<6} "
                   f"{v.loaded_at[:19]:<20} {v.source_name}  {v.label}")


@cli.command("diff")
@click.argument("layer", type=click.Choice(LAYER_IDS), metavar="LAYER")
@click.argument("v1", type=int)
@click.argument("v2", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def diff_command(obj: dict[str, Any], layer: str, v1: int, v2: int, as_json: bool) -> None:
    """Compare versions V1 and V2 of LAYER: features and area moved between classes (调入/调出)."""
    from multiplan.diff import diff_versions

    with open_store(obj["store"]) as store:
        result = diff_versions(store, layer, v1, v2)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    c = result["counts"]
    click.echo(_t(f"{layer} 版本 {v1} → {v2}(按{'标识码' if result['matched_by'] == 'feature_key' else '几何'}匹配)",
                  f"{layer} version {v1} -> {v2} (matched by {result['matched_by']})"))
    click.echo(_t(f"  新增 {c['added']},删除 {c['removed']},几何变化 {c['geometry_changed']},"
                  f"属性变化 {c['attributes_changed']},未变 {c['unchanged_features']}",
                  f"  added {c['added']}, removed {c['removed']}, geometry changed {c['geometry_changed']}, "
                  f"attributes changed {c['attributes_changed']}, unchanged {c['unchanged_features']}"))
    for label, keys in ((_t("新增", "added"), result["added"]), (_t("删除", "removed"), result["removed"]),
                        (_t("几何变化", "geometry changed"), result["geometry_changed"])):
        if keys:
            click.echo(f"  {label}: {', '.join(keys[:20])}{' …' if len(keys) > 20 else ''}")
    if result["class_moves"]:
        click.echo(_t("  地类流转(调出 → 调入):", "  area moved between classes (out -> in):"))
        for m in result["class_moves"]:
            click.echo(f"    {m['from'] or '-'} {m['from_name']} → {m['to'] or '-'} {m['to_name']}: "
                       f"{m['area_ha']:.4f} ha ({m['area_mu']:.2f} 亩)")
        click.echo(_t("  各类调入/调出(公顷):", "  per class in/out (ha):"))
        for b in result["class_balance"]:
            click.echo(f"    {b['code'] or '-':<8} {b['name']:<16} +{b['in_m2'] / 1e4:.4f} -{b['out_m2'] / 1e4:.4f} "
                       f"= {b['net_m2'] / 1e4:+.4f}")
