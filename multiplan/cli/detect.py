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
@click.pass_obj
def detect_command(obj: dict[str, Any], rule_ids: tuple[str, ...], pins: tuple[str, ...], dem: str | None,
                   out: str | None, as_json: bool) -> None:
    """Find where plans contradict each other, rule by rule."""
    from multiplan.detection import run_detection

    versions = {}
    for pin in pins:
        layer, _, number = pin.partition("=")
        if not number.isdigit():
            raise click.BadParameter(f"{pin!r}: expected LAYER=N", param_hint="--version")
        versions[layer] = int(number)
    bars = _Bars()
    try:
        with open_store(obj["store"]) as store:
            result = run_detection(store, versions, list(rule_ids) or None, {"dem": dem} if dem else None, bars)
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
    if out:
        click.echo(_t(f"图斑已写入 {out}", f"patches written to {out}"))
