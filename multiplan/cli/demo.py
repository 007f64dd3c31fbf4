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

SAMPLE_DIR = config.PROJECT_ROOT / "sample_data"


@cli.command("demo")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=SAMPLE_DIR,
              show_default=True, help="Sample data folder (made by scripts/make_sample_data.py).")
@click.option("--fresh/--keep", default=True, help="Start from an empty store (default) or add versions to it.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("multiplan-report"),
              show_default=True, help="Where the conflict reports go.")
@click.pass_obj
def demo_command(obj: dict[str, Any], data_dir: Path, fresh: bool, report_dir: Path) -> None:
    """Load the sample county (all twelve layers), detect conflicts, write the reports."""
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
