"""`multiplan check-site` and `multiplan approvals`: site checks and the approval records they belong to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from multiplan import config, i18n
from multiplan.cli import cli
from multiplan.cli.plans import _t
from multiplan.store import open_store

_VERDICT = {"compliant": ("符合", "compliant"), "conditional": ("有条件符合", "conditional"),
            "prohibited": ("不符合(禁止)", "prohibited"), "unknown": ("无法判定,需人工核查", "unknown, needs manual review")}
_POSITION = {"inside": ("线内", "inside"), "outside": ("线外", "outside"), "both": ("跨线", "both"),
             "unknown": ("未知", "unknown")}


def _pick(pair: tuple[str, str]) -> str:
    return pair[0] if i18n.language() == "zh" else pair[1]


def _text(value: dict[str, str]) -> str:
    return value["zh" if i18n.language() == "zh" else "en"]


def _dem(dem: str | None) -> dict[str, str] | None:
    dem = dem or config.setting("dem")
    return {"dem": dem} if dem else None


@cli.command("check-site")
@click.argument("site_file", required=False, type=click.Path(dir_okay=False))
@click.option("--crs", help="CRS of the site file when it has none or a wrong one (e.g. EPSG:4525).")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="Check against the plan versions current on that date.")
@click.option("--format", "fmt", type=click.Choice(["json", "html", "pdf"]), help="Write the report in this format.")
@click.option("--out", type=click.Path(dir_okay=False), help="Report file (default: print JSON, or site-check.html/pdf).")
@click.option("--approval", "approval_code", metavar="CODE", help="Link the check to this approval record "
              "(its stored site is used when no file is given).")
@click.option("--use", "project_use", type=click.Choice(["construction", "network"]), default="construction",
              show_default=True, help="The project: building land, or a linear network corridor.")
@click.option("--reach", "reach_m", type=float, default=500.0, show_default=True,
              help="Distance (m) within which network corridors are listed.")
@click.option("--dem", type=click.Path(exists=True, dir_okay=False), help="DEM GeoTIFF [env MULTIPLAN_DEM].")
@click.option("--save/--no-save", default=True, help="Store the check (and link it to the approval).")
@click.pass_obj
def check_site_command(obj: dict[str, Any], site_file: str | None, crs: str | None, as_of: str | None,
                       fmt: str | None, out: str | None, approval_code: str | None, project_use: str, reach_m: float,
                       dem: str | None, save: bool) -> None:
    """Check a project site (GeoJSON, WKT, zipped shapefile, KML, DXF or 界址点 table) against the plans."""
    from multiplan.approvals import get_approval, record_check
    from multiplan.errors import InputError
    from multiplan.site_reports import render_html, render_pdf
    from multiplan.sitecheck import canonical_json, check_site
    from multiplan.sites import read_site

    if as_of is not None and not _is_date(as_of):
        raise click.BadParameter(f"{as_of!r}: expected YYYY-MM-DD", param_hint="--as-of")
    with open_store(obj["store"]) as store:
        if site_file:
            site: Any = read_site(site_file, crs=crs)
            for note in site.notes:
                click.echo(_t("注意: ", "note: ") + note, err=True)
        elif approval_code:
            site = get_approval(store, approval_code)["site"]
            if site is None:
                raise InputError("approval_no_site", code=approval_code)
        else:
            raise click.UsageError(_t("请给出用地文件,或用 --approval 指定已有红线的审批项目。",
                                      "Give a site file, or --approval for a project whose site is on record."))
        report = check_site(site, store, as_of=as_of, rasters=_dem(dem), project_use=project_use, reach_m=reach_m)
        check_id = record_check(store, report, getattr(site, "geometry", site), approval_code) if save else None
        lang = i18n.language()
        if fmt == "html" or (fmt is None and out and out.lower().endswith((".html", ".htm"))):
            path = Path(out or "site-check.html")
            path.write_text(render_html(report, lang, store), "utf-8")
        elif fmt == "pdf" or (fmt is None and out and out.lower().endswith(".pdf")):
            path = Path(out or "site-check.pdf")
            path.write_bytes(render_pdf(report, lang, store))
        elif fmt == "json" or out:
            if not out:
                click.echo(canonical_json(report))
                return
            path = Path(out)
            path.write_text(canonical_json(report) + "\n", "utf-8")
        else:
            _print_summary(report, check_id)
            return
    _print_summary(report, check_id)
    click.echo(_t(f"报告已写入 {path}", f"report written to {path}"))


def _is_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _print_summary(report: dict[str, Any], check_id: int | None) -> None:
    site = report["site"]
    click.echo(_t(f"用地面积 {site['area_m2']:,.2f} 平方米({site['area_ha']:,.4f} 公顷,{site['area_mu']:,.2f} 亩)",
                  f"site area {site['area_m2']:,.2f} m² ({site['area_ha']:,.4f} ha, {site['area_mu']:,.2f} mu)"))
    verdict = _pick(_VERDICT[report["verdict"]])
    because = f"({', '.join(report['verdict_rules'])})" if report["verdict_rules"] else ""
    click.echo(_t("审查结论: ", "verdict: ") + verdict + because)
    for f in report["findings"]:
        area = f"{f['area_m2']:,.2f} m²" if f["area_m2"] is not None else _t("无法计算", "not computed")
        click.echo(f"  [{f['severity']}] {f['rule']}: {_text(f['title'])}  {area}")
    click.echo(_t("控制线:", "control lines:"))
    for c in report["control_lines"]:
        share = f"{c['inside_percent']:.2f}%" if c["inside_percent"] is not None else "?"
        click.echo(f"  {_text(c['name'])}: {_pick(_POSITION[c['position']])} {share}")
    click.echo(_t("各规划地类:", "plan classes:"))
    for row in report["overlaps"]:
        click.echo(f"  {row['layer']:<12} {row['class_code'] or '-':<8} {_text(row['class_name']):<16} "
                   f"{row['area_m2']:>14,.2f} m²  {row['site_percent']:>7.2f}%")
    if report["networks"]:
        click.echo(_t(f"五网廊道({report['reach_m']:g} 米内):", f"network corridors (within {report['reach_m']:g} m):"))
        for n in report["networks"]:
            click.echo(f"  {n['layer']:<6} {n['feature']:<20} {n['distance_m']:>9,.1f} m  "
                       + _t(f"用地内 {n['length_inside_m']:,.1f} 米", f"inside {n['length_inside_m']:,.1f} m"))
    if report["conflicts"]:
        click.echo(_t("涉及冲突: ", "conflicts touched: ") + ", ".join(c["conflict_id"] for c in report["conflicts"]))
    if report["slivers"]["count"]:
        click.echo(_t(f"容差压盖碎片: {report['slivers']['count']} 处,{report['slivers']['area_m2']:,.2f} 平方米",
                      f"slivers suppressed: {report['slivers']['count']}, {report['slivers']['area_m2']:,.2f} m²"))
    if check_id is not None:
        click.echo(_t(f"核查记录 {check_id},内容校验码 {report['content_sha256'][:16]}",
                      f"check no. {check_id}, content hash {report['content_sha256'][:16]}"))


# -- approvals --------------------------------------------------------------------------------------
@cli.group("approvals")
def approvals_group() -> None:
    """Approval records: import, list, show, create, move through their states."""


@approvals_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def approvals_import(obj: dict[str, Any], file: str, as_json: bool) -> None:
    """Import an export of the online approval system (CSV or JSON); known projects are updated."""
    from multiplan.approvals import import_approvals

    with open_store(obj["store"]) as store:
        result = import_approvals(store, file)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(_t(f"新增 {len(result.created)},更新 {len(result.updated)},未变 {len(result.unchanged)},"
                      f"出错 {len(result.errors)}",
                      f"created {len(result.created)}, updated {len(result.updated)}, unchanged "
                      f"{len(result.unchanged)}, errors {len(result.errors)}"))
        for e in result.errors:
            click.echo(_t(f"  第 {e['line']} 行", f"  line {e['line']}") + f" ({e['code'] or '-'}): {e['message']}",
                       err=True)
    if result.errors:
        raise SystemExit(1)


@approvals_group.command("list")
@click.option("--status")
@click.option("--stage")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def approvals_list(obj: dict[str, Any], status: str | None, stage: str | None, as_json: bool) -> None:
    """List approval records."""
    from multiplan.approvals import list_approvals

    with open_store(obj["store"]) as store:
        rows = list_approvals(store, status, stage)
    if as_json:
        click.echo(json.dumps([{k: v for k, v in r.items() if k != "site"} for r in rows], ensure_ascii=False,
                              indent=2))
        return
    for r in rows:
        verdict = _pick(_VERDICT[r["latest_verdict"]]) if r["latest_verdict"] else "-"
        click.echo(f"{r['code']}  {r['status']:<13} {r['stage'] or '':<10} {verdict:<10} {r['name'] or ''}")


@approvals_group.command("show")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def approvals_show(obj: dict[str, Any], code: str, as_json: bool) -> None:
    """An approval with its history, its site checks and the conflicts its site touches."""
    from multiplan.approvals import get_approval

    with open_store(obj["store"]) as store:
        record = get_approval(store, code)
    site = record.pop("site")
    if as_json:
        record["site"] = None if site is None else json.loads(__import__("shapely").to_geojson(site))
        click.echo(json.dumps(record, ensure_ascii=False, indent=2, default=str))
        return
    for key in ("code", "name", "applicant", "stage", "status", "applied_on", "decided_on", "officer", "notes"):
        click.echo(f"{key:<11} {record.get(key) or ''}")
    click.echo(_t("历史:", "history:"))
    for e in record["events"]:
        move = f"{e['from_status'] or ''} → {e['to_status']}" if e["to_status"] else ""
        click.echo(f"  {e['at'][:19]}  {e['kind']:<10} {move:<28} {e['actor']}  {e['officer'] or ''} "
                   f"{e['reason'] or ''}")
    click.echo(_t("用地核查:", "site checks:"))
    for c in record["checks"]:
        click.echo(f"  #{c['id']}  {c['checked_at'][:19]}  {_pick(_VERDICT[c['verdict']])}  {c['content_sha256'][:16]}")
    click.echo(_t("涉及冲突: ", "conflicts touched: ") + (", ".join(record["conflicts"]) or "-"))


@approvals_group.command("add")
@click.option("--code", required=True, help="Project code, e.g. 2024-460000-70-01-000001.")
@click.option("--name", required=True)
@click.option("--applicant", required=True)
@click.option("--stage", required=True, help="选址意见书, 用地预审, 建设用地规划许可 or 建设工程规划许可.")
@click.option("--site", "site_file", type=click.Path(dir_okay=False), help="Site boundary file.")
@click.option("--crs", help="CRS of the site file.")
@click.option("--applied-on", metavar="YYYY-MM-DD")
@click.option("--officer")
@click.option("--notes")
@click.pass_obj
def approvals_add(obj: dict[str, Any], code: str, name: str, applicant: str, stage: str, site_file: str | None,
                  crs: str | None, applied_on: str | None, officer: str | None, notes: str | None) -> None:
    """Create an approval record (status submitted)."""
    from multiplan.approvals import create_approval
    from multiplan.sites import read_site

    record = {"code": code, "name": name, "applicant": applicant, "stage": stage, "applied_on": applied_on,
              "officer": officer, "notes": notes, "site": read_site(site_file, crs=crs).geometry if site_file else None}
    with open_store(obj["store"]) as store:
        created = create_approval(store, record)
    click.echo(_t(f"已创建审批记录 {created['code']}({created['status']})",
                  f"approval {created['code']} created ({created['status']})"))


@approvals_group.command("transition")
@click.argument("code")
@click.argument("state")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.option("--officer", help="The officer deciding.")
@click.option("--override", help="Approve despite a prohibited or unknown latest check: the reason (needs --officer).")
@click.option("--by", "actor", default=None, help="Who records it (default: the login name).")
@click.pass_obj
def approvals_transition(obj: dict[str, Any], code: str, state: str, reason: str, officer: str | None,
                         override: str | None, actor: str | None) -> None:
    """Move approval CODE to STATE (under_review, approved, rejected, withdrawn)."""
    from multiplan.approvals import transition_approval

    with open_store(obj["store"]) as store:
        record = transition_approval(store, code, state, reason, actor=actor, officer=officer, override=override)
    click.echo(f"{code}: {record['status']}")
