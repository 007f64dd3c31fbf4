"""`multiplan demo`: load the sample county into the embedded store and print the load reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from multiplan import config, i18n
from multiplan.cli import cli
from multiplan.cli.plans import print_load_report
from multiplan.ingest import LoadOptions, load_plan
from multiplan.store import open_store
from multiplan.store.base import PlanStore

SAMPLE_DIR = config.PROJECT_ROOT / "sample_data"


@cli.command("demo")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=SAMPLE_DIR,
              show_default=True, help="Sample data folder (made by scripts/make_sample_data.py).")
@click.option("--fresh/--keep", default=True, help="Start from an empty store (default) or add versions to it.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("multiplan-report"),
              show_default=True, help="Where the conflict reports go.")
@click.option("--serve/--no-serve", default=True, help="End by serving the web application on the demo store.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_obj
def demo_command(obj: dict[str, Any], data_dir: Path, fresh: bool, report_dir: Path, serve: bool, port: int) -> None:
    """Load the sample county (all twelve layers), detect conflicts, write the reports, check the sample
    approvals' sites, then serve the web application (demo logins printed)."""
    zh = i18n.language() == "zh"
    manifest = yaml.safe_load((data_dir / "manifest.yaml").read_text("utf-8"))
    store_url = obj["store"] or config.setting("store")
    if fresh and "://" not in store_url and Path(store_url).exists():
        Path(store_url).unlink()
    with open_store(store_url) as store:
        store.init()
        click.echo(("示例存储: " if zh else "demo store: ") + store.url)
        for layer_id, entry in manifest["layers"].items():
            report = load_plan(store, layer_id, data_dir / entry["file"],
                               LoadOptions(label="示例" if zh else "sample", source_layer=entry.get("source_layer")))
            print_load_report(report)
        versions = store.versions()
        click.echo(("已入库 " if zh else "loaded ") + f"{len(versions)} " + ("个规划版本。" if zh else "plan versions."))
        from multiplan.detection import run_detection
        from multiplan.reports import write_reports

        dem = data_dir / manifest["dem"]
        run = run_detection(store, rasters={"dem": dem})
        ledger = store.save_detection(run, run["patches"])
        click.echo(f"冲突检测:{len(run['patches'])} 个冲突图斑,台账新增 {len(ledger['new'])} 条" if zh else
                    f"detection: {len(run['patches'])} conflict patches, {len(ledger['new'])} new in the ledger")
        for folder in write_reports(store, report_dir, i18n.language(), dem=dem):
            click.echo(("报告: " if zh else "report: ") + str(folder / "report.html"))
        _check_sample_approvals(store, data_dir / manifest["approvals"], dem, report_dir / "sites")
        _demo_users(store)
    if serve:
        from multiplan.cli.web import serve as run_server

        click.echo((f"网页: http://127.0.0.1:{port}/  (按 Ctrl+C 停止)" if zh
                    else f"web application: http://127.0.0.1:{port}/  (Ctrl+C stops it)"), err=False)
        run_server(store_url, "127.0.0.1", port, workers=1, threads=8, dem=str(dem))


#: Demo accounts, one per role (the demo store only: real stores start with `multiplan users add`).
DEMO_PASSWORD = "multiplan-demo"
DEMO_USERS = (("admin", "admin", "管理员"), ("planner", "planner", "规划科 李明"), ("officer", "officer", "审批科 王海涛"),
              ("viewer", "viewer", "查询用户"))


def _demo_users(store: PlanStore) -> None:
    from multiplan import users

    zh = i18n.language() == "zh"
    known = {u["username"] for u in users.list_users(store)}
    for name, role, display in DEMO_USERS:
        if name not in known:
            users.add_user(store, name, DEMO_PASSWORD, role, display, actor="demo")
    click.echo((f"演示账号(密码均为 {DEMO_PASSWORD}): " if zh else f"demo logins (password {DEMO_PASSWORD} for all): ")
               + ", ".join(f"{name} ({role})" for name, role, _ in DEMO_USERS))


def _check_sample_approvals(store: PlanStore, approvals: Path, dem: Path, out_dir: Path) -> None:
    """Import the sample approvals, check every site against the plans, file an HTML report for each."""
    from multiplan.approvals import import_approvals, list_approvals, record_check
    from multiplan.site_reports import render_html
    from multiplan.sitecheck import check_site

    zh = i18n.language() == "zh"
    result = import_approvals(store, approvals)
    click.echo(f"审批记录导入:新增 {len(result.created)},更新 {len(result.updated)},未变 {len(result.unchanged)}" if zh
               else f"approvals imported: {len(result.created)} new, {len(result.updated)} updated, "
                    f"{len(result.unchanged)} unchanged")
    out_dir.mkdir(parents=True, exist_ok=True)
    words = {"compliant": ("符合", "compliant"), "conditional": ("有条件", "conditional"),
             "prohibited": ("禁止", "prohibited"), "unknown": ("需人工核查", "needs review")}
    for approval in list_approvals(store):
        if approval["site"] is None:
            continue
        report = check_site(approval["site"], store, rasters={"dem": dem})
        record_check(store, report, approval["site"], approval["code"])
        path = out_dir / f"{approval['code']}.html"
        path.write_text(render_html(report, i18n.language(), store), "utf-8")
        verdict = words[report["verdict"]][0 if zh else 1]
        click.echo(f"  {approval['code']}  {verdict:<8} {approval['name']}  → {path}")
