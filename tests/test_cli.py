"""The command line: each command, its output and its failures (non-zero, no traceback)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from multiplan.cli import cli, demo, detect, plans, specs  # noqa: F401  (importing registers the commands)
from tests.builders import land_use_frame, write_shapefile


@pytest.fixture
def run(store_url):
    runner = CliRunner()

    def invoke(*args, lang="zh"):
        return runner.invoke(cli, ["--store", store_url, "--lang", lang, *map(str, args)])
    return invoke


def test_load_plans_and_diff(run, tmp_path):
    shp = write_shapefile(land_use_frame(), tmp_path / "a", "lu", epsg=4525, prj=False)
    result = run("load", "land_use", shp, "--label", "一版")
    assert result.exit_code == 0, result.output
    assert "版本 1" in result.output and "EPSG:4525(自动识别)" in result.output
    assert "没有 .prj 文件" in result.output
    result = run("load", "land_use", shp, "--json")
    report = json.loads(result.output)
    assert report["version"] == 2 and report["crs"]["guessed"] is True
    assert set(report) >= {"counts", "repairs", "unknown_codes", "crs", "encoding", "area_by_class", "rejected"}
    result = run("plans", "land_use")
    assert result.exit_code == 0 and "一版" in result.output and result.output.count("land_use") == 2
    assert json.loads(run("plans", "--json").output)[0]["label"] == "一版"
    result = run("diff", "land_use", 1, 2, lang="en")
    assert result.exit_code == 0 and "unchanged 16" in result.output


def test_failures_exit_non_zero_with_a_message_and_no_traceback(run, tmp_path):
    bad = tmp_path / "规划.zip"
    bad.write_bytes(b"not a zip at all")
    result = run("load", "land_use", bad)
    assert result.exit_code == 1
    assert "规划.zip" in result.output and "Traceback" not in result.output
    assert result.output.startswith("错误: ")
    result = run("load", "land_use", bad, lang="en")
    assert result.output.startswith("Error: ") and "not a valid zip" in result.output
    assert run("load", "no_such_layer", bad).exit_code == 2
    result = run("load", "land_use", tmp_path / "missing.zip")
    assert result.exit_code == 1 and "missing.zip" in result.output
    result = run("load", "land_use", bad, "--crs", "EPSG:0")
    assert result.exit_code == 1 and "--crs EPSG:0" in result.output
    result = run("diff", "land_use", 1, 2)
    assert result.exit_code == 1 and "没有任何版本" in result.output


def test_layers_and_validate():
    runner = CliRunner()
    result = runner.invoke(cli, ["--lang", "en", "layers"])
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 12
    assert "Ecological protection red line" in result.output
    result = runner.invoke(cli, ["validate"])
    assert result.exit_code == 0 and "全部配置有效 (37)" in result.output


def test_init_reports_migrations_once(tmp_path):
    runner = CliRunner()
    store = str(tmp_path / "s.gpkg")
    first = runner.invoke(cli, ["--store", store, "init"])
    assert first.exit_code == 0 and "1: plan layers" in first.output
    again = runner.invoke(cli, ["--store", store, "init"])
    assert again.exit_code == 0 and "迁移" not in again.output


def test_unknown_store_is_refused_clearly(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["--store", "postgresql://nobody@127.0.0.1:1/none", "plans"])
    assert result.exit_code == 1 and "无法连接存储" in result.output and "Traceback" not in result.output


def test_conflict_ledger_commands(tmp_path, demo_store):
    import shutil

    store = tmp_path / "ledger.gpkg"
    shutil.copy(demo_store.url, store)
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(cli, ["--store", str(store), *args])
        assert result.exit_code == 0, result.output
        return result.output
    assert "新增 0,仍存在 5" in run("detect", "--rule", "farmland")  # the demo found them already
    cases = json.loads(run("conflicts", "list", "--json", "--rule", "farmland"))
    cid = cases[0]["conflict_id"]
    assert run("conflicts", "transition", cid, "under_coordination", "--reason", "协调中", "--by", "张") .strip().endswith(
        "under_coordination")
    run("conflicts", "opinion", cid, "--author", "区政府", "--text", "同意调整")
    shown = run("conflicts", "show", cid)
    assert "detected" in shown and "opinion" in shown and "区政府" in shown
    bad = runner.invoke(cli, ["--store", str(store), "conflicts", "transition", cid, "flying", "--reason", "x"])
    assert bad.exit_code == 1 and "flying" in bad.output and "Traceback" not in bad.output
    assert len(json.loads(run("conflicts", "list", "--json", "--status", "open", "--rule", "farmland"))) == 4
