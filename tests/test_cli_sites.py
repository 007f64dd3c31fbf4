"""`multiplan check-site` and `multiplan approvals` on a copy of the demo store, as an officer uses them."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from multiplan.cli import cli, detect, sites  # noqa: F401  (registers the commands)
from multiplan.cli.demo import SAMPLE_DIR

DEM = str(SAMPLE_DIR / "dem.tif")
SITE_A = str(SAMPLE_DIR / "sites" / "site_a.geojson")   # 石岭火山森林温泉度假酒店项目: red line I
SITE_JZD = str(SAMPLE_DIR / "sites" / "site_jzd.txt")   # 岭北镇农产品冷链物流中心项目: basic farmland


@pytest.fixture
def demo_copy(demo_store, tmp_path):
    path = tmp_path / "demo.gpkg"
    shutil.copy(demo_store.url, path)
    return str(path)


def run(store, *args, lang="zh"):
    return CliRunner().invoke(cli, ["--store", store, "--lang", lang, *args], catch_exceptions=False)


def test_check_site_prints_the_verdict_findings_and_control_lines(demo_copy):
    result = run(demo_copy, "check-site", SITE_A, "--dem", DEM)
    assert result.exit_code == 0, result.output
    assert "审查结论: 不符合(禁止)" in result.output
    assert "red_line_1" in result.output and "生态保护红线(一类): 线内" in result.output
    assert "核查记录" in result.output


def test_check_site_json_has_the_documented_keys(demo_copy):
    result = run(demo_copy, "check-site", SITE_JZD, "--dem", DEM, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "prohibited" and report["verdict_rules"] == ["farmland"]
    assert report["site"]["input_crs"] == "EPSG:4525" and report["site"]["area_m2"] > 0
    assert {"layer", "class_code", "class_name", "area_m2", "site_percent"} <= set(report["overlaps"][0])
    assert report["plan_versions"]["overall"]["version"] == 1


def test_check_site_writes_html_in_english_and_pdf(demo_copy, tmp_path):
    html_path, pdf_path = tmp_path / "r.html", tmp_path / "r.pdf"
    result = run(demo_copy, "check-site", SITE_A, "--dem", DEM, "--format", "html", "--out", str(html_path),
                 lang="en")
    assert result.exit_code == 0, result.output
    page = html_path.read_text("utf-8")
    assert "Legal and policy compliance" in page and "The three control lines" in page and "prohibited" in page
    assert "data:image/png;base64," in page
    result = run(demo_copy, "check-site", SITE_A, "--dem", DEM, "--format", "pdf", "--out", str(pdf_path))
    assert result.exit_code == 0, result.output
    assert pdf_path.read_bytes()[:5] == b"%PDF-" and pdf_path.stat().st_size > 20_000
    html_zh = run(demo_copy, "check-site", SITE_A, "--dem", DEM, "--format", "html", "--out", str(html_path))
    assert html_zh.exit_code == 0
    page = html_path.read_text("utf-8")
    for section in ("法规政策符合性", "三线协调分析", "总体规划符合性", "专项规划符合性", "小结"):
        assert section in page


def test_a_check_linked_to_an_approval_blocks_its_approval_until_overridden(demo_copy):
    code = "2024-469099-59-01-000156"  # under review, its site on basic farmland
    result = run(demo_copy, "check-site", "--approval", code, "--dem", DEM)
    assert result.exit_code == 0 and "不符合(禁止)" in result.output
    shown = run(demo_copy, "approvals", "show", code, "--json")
    record = json.loads(shown.output)
    assert record["checks"][-1]["verdict"] == "prohibited" and record["conflicts"]
    blocked = run(demo_copy, "approvals", "transition", code, "approved", "--reason", "同意")
    assert blocked.exit_code == 1 and "不能直接批准" in blocked.output and "Traceback" not in blocked.output
    done = run(demo_copy, "approvals", "transition", code, "approved", "--reason", "同意", "--officer", "陈晓燕",
               "--override", "省政府专题会议纪要")
    assert done.exit_code == 0 and "approved" in done.output
    history = run(demo_copy, "approvals", "show", code)
    assert "override" in history.output and "陈晓燕" in history.output
    conflict = record["conflicts"][0]
    shown = run(demo_copy, "conflicts", "show", conflict)
    assert code in shown.output


def test_approvals_import_reports_bad_rows_by_line(demo_copy, tmp_path):
    bad = tmp_path / "export.csv"
    bad.write_text("项目代码,项目名称,申请单位,审批阶段,状态\n2025-460000-48-01-000001,新项目,某单位,用地预审,submitted\n"
                   "20250001,坏代码,某单位,用地预审,submitted\n", encoding="utf-8")
    result = run(demo_copy, "approvals", "import", str(bad))
    assert result.exit_code == 1
    assert "新增 1" in result.output and "第 3 行" in result.output and "20250001" in result.output
    listed = run(demo_copy, "approvals", "list")
    assert "2025-460000-48-01-000001" in listed.output


def test_approvals_add_and_list(demo_copy):
    result = run(demo_copy, "approvals", "add", "--code", "2025-460000-48-01-000009", "--name", "测试项目",
                 "--applicant", "测试单位", "--stage", "用地预审", "--site", SITE_A)
    assert result.exit_code == 0, result.output
    shown = json.loads(run(demo_copy, "approvals", "show", "2025-460000-48-01-000009", "--json").output)
    assert shown["status"] == "submitted" and shown["site"]["type"] == "MultiPolygon"


def test_a_site_outside_hainan_is_refused_with_a_clear_message(demo_copy, tmp_path):
    far = tmp_path / "beijing.geojson"
    far.write_text(json.dumps({"type": "Polygon", "coordinates": [[[116.3, 39.9], [116.31, 39.9], [116.31, 39.91],
                                                                   [116.3, 39.9]]]}), "utf-8")
    result = run(demo_copy, "check-site", str(far))
    assert result.exit_code == 1 and "beijing.geojson" in result.output and "Traceback" not in result.output
