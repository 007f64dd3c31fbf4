"""`multiplan detect`: run the conflict rules on the plan versions in the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from multiplan import i18n
from multiplan.cli import cli
from multiplan.cli.plans import _Bars, _t
from multiplan.io import write_patches
from multiplan.store import open_store

_SEVERITY = {"forbidden": ("禁止", "forbidden"), "major": ("重大", "major"), "conditional": ("有条件", "conditional"),
             "notice": ("提示", "notice")}


@cli.command("detect")
@click.option("--rule", "rule_ids", multiple=True, help="Run only this rule (repeatable).")
@click.option("--version", "pins", multiple=True, metavar="LAYER=N", help="Use version N of LAYER, not the newest.")
@click.option("--dem", type=click.Path(exists=True, dir_okay=False), help="DEM GeoTIFF for the slope rule.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the patches (.gpkg, .geojson or .csv).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("--save/--no-save", default=True, help="Record the run and its patches in the store's conflict ledger.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local",
              help="Run the rules in this process (default), or on Dask in spatial partitions: same patches.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Dask scheduler to use (tcp://host:8786); without it --engine dask starts 2 local workers.")
@click.pass_obj
def detect_command(obj: dict[str, Any], rule_ids: tuple[str, ...], pins: tuple[str, ...], dem: str | None,
                   out: str | None, as_json: bool, save: bool, engine: str, scheduler: str | None) -> None:
    """Find where plans contradict each other, rule by rule."""
    from multiplan.detection import run_detection

    if scheduler and engine != "dask":
        raise click.BadParameter("a scheduler runs the Dask engine: add --engine dask", param_hint="--scheduler")
    versions = {}
    for pin in pins:
        layer, _, number = pin.partition("=")
        if not number.isdigit():
            raise click.BadParameter(f"{pin!r}: expected LAYER=N", param_hint="--version")
        versions[layer] = int(number)
    bars = _Bars()
    try:
        with open_store(obj["store"]) as store:
            result = run_detection(store, versions, list(rule_ids) or None, {"dem": dem} if dem else None, bars,
                                   engine=engine, scheduler=scheduler)
            if save:
                result["ledger"] = store.save_detection(result, result["patches"])
    finally:
        bars.close()
    if out:
        write_patches(result["patches"], Path(out))
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "patches"}, ensure_ascii=False, indent=2))
        return
    zh = i18n.language() == "zh"
    click.echo(_t("规划版本: ", "plan versions: ") + ", ".join(f"{k} v{v}" for k, v in result["versions"].items()))
    click.echo(_t("规则  严重程度  图斑  面积(公顷)  容差(平方米)  压盖碎片(个/平方米)",
                  "rule  severity  patches  area (ha)  tolerance (m²)  suppressed slivers (n / m²)"))
    for r in result["rules"]:
        flag = "" if not r["unknown"] else _t(f"  待人工核查 {len(r['unknown'])}", f"  unknown, needs review: {len(r['unknown'])}")
        missing = _t(f"  缺少图层 {', '.join(r['missing_layers'])}", f"  missing layers {', '.join(r['missing_layers'])}") \
            if r["missing_layers"] else ""
        click.echo(f"  {r['rule']:<18} {_SEVERITY[r['severity']][0 if zh else 1]:<11} {r['patches']:>5} "
                   f"{r['area_m2'] / 1e4:>11.2f} {r['tolerance'].get('min_area_m2', 0):>8g} "
                   f"{r['suppressed']['count']:>6} / {r['suppressed']['area_m2']:,.1f}{flag}{missing}")
    for w in result["warnings"]:
        click.echo(_t(f"⚠ 指标预警 {w['title']['zh']}:{w['layer']} 版本 {w['version']}({w['scope']})"
                      f" {w['value_m2'] / 1e4:,.2f} 公顷,目标 {w['target_m2'] / 1e4:,.2f} 公顷",
                      f"! indicator warning {w['title']['en']}: {w['layer']} version {w['version']} ({w['scope']})"
                      f" {w['value_m2'] / 1e4:,.2f} ha, target {w['target_m2'] / 1e4:,.2f} ha"))
    if save:
        ledger = result["ledger"]
        click.echo(_t(f"冲突台账(运行 {ledger['run_id']}):新增 {len(ledger['new'])},仍存在 {len(ledger['unchanged'])},"
                      f"已消除 {len(ledger['resolved'])}",
                      f"conflict ledger (run {ledger['run_id']}): new {len(ledger['new'])}, still there "
                      f"{len(ledger['unchanged'])}, resolved {len(ledger['resolved'])}"))
    if out:
        click.echo(_t(f"图斑已写入 {out}", f"patches written to {out}"))



@cli.group("conflicts")
def conflicts_group() -> None:
    """The conflict ledger: list, show, move through statuses, record opinions."""


@conflicts_group.command("list")
@click.option("--status")
@click.option("--rule")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def conflicts_list(obj: dict[str, Any], status: str | None, rule: str | None, as_json: bool) -> None:
    """List conflicts (filter by status and rule)."""
    with open_store(obj["store"]) as store:
        cases = store.conflicts(status, rule)
    if as_json:
        click.echo(json.dumps(cases, ensure_ascii=False, indent=2, default=str))
        return
    for c in cases:
        click.echo(f"{c['conflict_id']}  {c['rule']:<18} {c['status']:<20} {c['layer_a']}:{c['feature_a']} × "
                   f"{c['layer_b'] or '-'}:{c['feature_b'] or '-'}  {(c['area_m2'] or 0) / 1e4:.4f} ha")


@conflicts_group.command("show")
@click.argument("conflict_id")
@click.pass_obj
def conflicts_show(obj: dict[str, Any], conflict_id: str) -> None:
    """A conflict with its suggested resolution and its whole history."""
    with open_store(obj["store"]) as store:
        case = next(iter(store.conflicts(conflict_id=conflict_id)), None)
        if case is None:
            from multiplan.errors import NotFoundError

            raise NotFoundError("conflict_not_found", conflict=conflict_id)
        events = store.conflict_events(conflict_id)
        from multiplan.approvals import approvals_touching

        approvals = approvals_touching(store, conflict_id)
    zh = i18n.language() == "zh"
    click.echo(json.dumps({k: v for k, v in case.items() if k != ("suggestion_en" if zh else "suggestion_zh")},
                          ensure_ascii=False, indent=2, default=str))
    for e in events:
        click.echo(f"  {e['at'][:19]}  {e['kind']:<14} {e['from_status'] or '':<18} → {e['to_status'] or '':<18} "
                   f"{e['actor']}  {e['author'] or ''} {e['text'] or ''}")
    click.echo(_t("相关审批项目:", "approvals touching it:") + ("" if approvals else " -"))
    for a in approvals:
        click.echo(f"  {a['code']}  #{a['check_id']}  {a['verdict']}  {a['checked_at'][:19]}")


@conflicts_group.command("transition")
@click.argument("conflict_id")
@click.argument("status")
@click.option("--reason", required=True)
@click.option("--by", "actor", default=None, help="Who decides (default: the login name).")
@click.pass_obj
def conflicts_transition(obj: dict[str, Any], conflict_id: str, status: str, reason: str, actor: str | None) -> None:
    """Move CONFLICT_ID to STATUS, recording who and why."""
    from multiplan.store.base import current_actor

    with open_store(obj["store"]) as store:
        case = store.transition_conflict(conflict_id, status, actor or current_actor(), reason)
    click.echo(f"{conflict_id}: {case['status']}")


@conflicts_group.command("opinion")
@click.argument("conflict_id")
@click.option("--author", required=True, help="Whose opinion (e.g. 区政府, 市政府, 领导小组).")
@click.option("--text", required=True)
@click.pass_obj
def conflicts_opinion(obj: dict[str, Any], conflict_id: str, author: str, text: str) -> None:
    """Record an opinion on CONFLICT_ID."""
    from multiplan.store.base import current_actor

    with open_store(obj["store"]) as store:
        store.add_conflict_opinion(conflict_id, current_actor(), author, text)
    click.echo(_t("已记录意见", "opinion recorded"))


_TWO_PLAN = {"both_construction": ("两规均为建设用地", "construction in both plans"),
             "both_non_construction": ("两规均为非建设用地", "non-construction in both plans"),
             "urban_construction_land_use_not": ("城规建设、土规非建设", "urban plan construction, land-use plan not"),
             "land_use_construction_urban_not": ("土规建设、城规非建设", "land-use plan construction, urban plan not"),
             "unclear": ("类别不明", "unclear")}


@cli.command("onemap")
@click.option("--dem", type=click.Path(exists=True, dir_okay=False), help="DEM GeoTIFF for the slope rule.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the one map as a GeoPackage layer.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def onemap_command(obj: dict[str, Any], dem: str | None, out: str | None, as_json: bool) -> None:
    """Overlay every polygon plan into the one map (一张图) and print its statistics per county."""
    from multiplan.detection import run_detection
    from multiplan.onemap import build_one_map, summary

    with open_store(obj["store"]) as store:
        run = run_detection(store, rasters={"dem": dem} if dem else None)
        frames = {lid: store.read_features(lid, v) for lid, v in run["versions"].items()}
    patches = run.pop("patches")[["rule", "severity", "geometry"]]  # only these: a province has millions
    one_map = build_one_map(frames, patches)
    if out:
        import pyogrio

        Path(out).unlink(missing_ok=True)
        pyogrio.write_dataframe(one_map, out, layer="one_map", driver="GPKG")
    result = summary(one_map)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2, default=float))
        return
    zh = i18n.language() == "zh"
    click.echo(_t(f"一张图: {result['faces']} 个图斑,总面积 {result['area_m2'] / 1e4:,.2f} 公顷",
                  f"one map: {result['faces']} faces, {result['area_m2'] / 1e4:,.2f} ha in all"))
    click.echo(_t("两规差异(公顷):", "two-plan differences (ha):"))
    for row in result["two_plan_differences"]:
        click.echo(f"  {row['xzqdm']}  {_TWO_PLAN[row['class']][0 if zh else 1]:<24} {row['area_ha']:>12,.2f}")
    click.echo(_t("冲突面积(公顷):", "conflict area (ha):"))
    for row in result["conflict_areas"]:
        click.echo(f"  {row['xzqdm']}  {row['rule']:<20} {row['area_ha']:>12,.2f}")
    if out:
        click.echo(_t(f"一张图已写入 {out}", f"one map written to {out}"))


@cli.command("report")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the reports.")
@click.option("--county", help="Only this county (XZQDM).")
@click.option("--dem", type=click.Path(exists=True, dir_okay=False), help="DEM GeoTIFF for the slope rule.")
@click.pass_obj
def report_command(obj: dict[str, Any], out_dir: str, county: str | None, dem: str | None) -> None:
    """Write conflict reports (HTML, CSV, XLSX, GeoPackage) for the province and each county."""
    from multiplan.reports import write_reports

    bars = _Bars()
    try:
        with open_store(obj["store"]) as store:
            folders = write_reports(store, out_dir, i18n.language(), county, dem, bars)
    finally:
        bars.close()
    for folder in folders:
        click.echo(_t(f"报告: {folder / 'report.html'}", f"report: {folder / 'report.html'}"))
