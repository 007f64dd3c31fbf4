"""Every page, role by role, on both stores: what each role may see and do, and what it is refused."""

from __future__ import annotations

import io
import json
import re
import uuid

import pytest

from multiplan.cli.demo import SAMPLE_DIR
from tests.builders import land_use_frame, write_shapefile, zip_shapefile

ROLES = ("viewer", "planner", "officer", "admin")
#: page -> roles that may open it (admin may open everything)
PAGES = {
    "/": ROLES, "/plans/": ROLES, "/plans/overall/1": ROLES, "/plans/overall/diff?from=1&to=1": ROLES,
    "/plans/upload": ("planner", "admin"), "/conflicts/": ROLES, "/approvals/": ROLES,
    "/approvals/2024-469099-59-01-000156": ROLES, "/approvals/import": ("officer", "admin"),
    "/approvals/new": ("officer", "admin"), "/sitecheck/": ("officer", "admin"), "/stats/": ROLES,
    "/admin/": ("admin",),
}
FARMLAND_CODE = "2024-469099-59-01-000156"  # its site lies on basic farmland


def new_code() -> str:
    return f"2025-460000-48-01-{uuid.uuid4().int % 1_000_000:06d}"


@pytest.mark.parametrize("page", PAGES)
def test_each_role_reaches_exactly_its_pages(client_as, page):
    for role in ROLES:
        status = client_as(role).get(page).status_code
        assert status == (200 if role in PAGES[page] else 403), (role, page, status)
    assert client_as(None).get(page).status_code == 302


def test_a_conflict_page_shows_its_case_and_planners_move_it(client_as):
    viewer = client_as("viewer")
    listing = viewer.get("/conflicts/?rule=farmland").get_data(as_text=True)
    conflict = re.search(r'/conflicts/(C[0-9A-F]+)"', listing).group(1)
    page = viewer.get(f"/conflicts/{conflict}").get_data(as_text=True)
    assert "minimap-data" in page and "conflict-transition" not in page
    assert viewer.post(f"/conflicts/{conflict}/transition", data={"status": "under_coordination",
                                                                 "reason": "x"}).status_code == 403
    planner = client_as("planner")
    moved = planner.post(f"/conflicts/{conflict}/transition", data={"status": "under_coordination",
                                                                   "reason": "约谈规划编制单位"})
    assert moved.status_code == 302
    page = planner.get(f"/conflicts/{conflict}").get_data(as_text=True)
    assert "约谈规划编制单位" in page or "under_coordination" in page
    back = planner.post(f"/conflicts/{conflict}/transition", data={"status": "open", "reason": "复核"})
    assert back.status_code == 302
    refused = planner.post(f"/conflicts/{conflict}/transition", data={"status": "no_such_status", "reason": "x"})
    assert refused.status_code == 409 and "Traceback" not in refused.get_data(as_text=True)


def test_conflict_filters_and_sorting(client_as):
    client = client_as("viewer")
    forbidden = client.get("/conflicts/?severity=forbidden&sort=area").get_data(as_text=True)
    assert "sev-forbidden" in forbidden and "sev-notice\">" not in forbidden
    assert client.get("/conflicts/?sort=drop%20table").status_code == 200  # unknown sorts fall back


def test_a_planner_uploads_a_plan_with_a_chinese_file_name_and_sees_its_report(client_as, tmp_path):
    shp = write_shapefile(land_use_frame(2), tmp_path, "土地利用规划")
    archive = zip_shapefile(shp, tmp_path / "规划成果.zip")
    client = client_as("planner")
    response = client.post("/plans/upload", data={"layer": "land_use", "label": "网页上传",
                                                  "file": (io.BytesIO(archive.read_bytes()), "规划成果.zip")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    report = client.get(response.headers["Location"], follow_redirects=True)
    page = report.get_data(as_text=True)
    assert report.status_code == 200 and "规划成果.zip" in page and "入库报告" in page


def test_a_failed_upload_says_why_and_changes_nothing(client_as, web_store_url):
    from multiplan.store import open_store

    with open_store(web_store_url) as store:
        before = len(store.versions())
    client = client_as("planner")
    response = client.post("/plans/upload", data={"layer": "overall", "file": (io.BytesIO(b"not a zip"), "坏文件.zip")},
                           content_type="multipart/form-data", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "入库失败" in page and "坏文件.zip" in page
    with open_store(web_store_url) as store:
        assert len(store.versions()) == before


def test_uploads_are_refused_for_unknown_layers_and_by_the_size_limit(make_app):
    client = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    from tests.conftest import WEB_PASSWORD

    client.post("/login", data={"username": "planner", "password": WEB_PASSWORD})
    too_big = client.post("/plans/upload", data={"layer": "overall", "file": (io.BytesIO(b"x" * 5000), "a.zip")},
                          content_type="multipart/form-data")
    assert too_big.status_code == 413
    unknown = client.post("/plans/upload", data={"layer": "x; DROP TABLE", "file": (io.BytesIO(b"x"), "a.zip")},
                          content_type="multipart/form-data")
    assert unknown.status_code == 404


def test_an_officer_checks_a_pasted_boundary_table_and_files_it(client_as):
    client = client_as("officer")
    table = (SAMPLE_DIR / "sites" / "site_jzd.txt").read_text("utf-8")
    response = client.post("/sitecheck/", data={"site_text": table, "use": "construction"})
    assert response.status_code == 302
    result = client.get(response.headers["Location"])
    page = result.get_data(as_text=True)
    assert 'data-verdict="prohibited"' in page and "farmland" in page
    check_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    pdf = client.get(f"/sitecheck/{check_id}/report.pdf")
    assert pdf.status_code == 200 and pdf.data[:5] == b"%PDF-"
    report = client.get(f"/sitecheck/{check_id}/report.json").get_json()
    assert report["verdict"] == "prohibited"
    html = client.get(f"/sitecheck/{check_id}/report.html")
    assert "法规政策符合性" in html.get_data(as_text=True)
    filed = client.post(f"/sitecheck/{check_id}/attach", data={"approval": FARMLAND_CODE})
    assert filed.status_code == 302
    detail = client.get(f"/approvals/{FARMLAND_CODE}").get_data(as_text=True)
    assert f"/sitecheck/{filed.headers['Location'].rstrip('/').split('/')[-1]}" in detail


def test_a_drawn_site_arrives_as_geojson_and_an_uploaded_file_works(client_as):
    client = client_as("officer")
    drawn = json.dumps({"type": "Polygon", "coordinates": [[[110.330, 19.930], [110.332, 19.930], [110.332, 19.932],
                                                             [110.330, 19.930]]]})
    assert client.post("/sitecheck/", data={"site_text": drawn}).status_code == 302
    site_a = (SAMPLE_DIR / "sites" / "site_a.geojson").read_bytes()
    response = client.post("/sitecheck/", data={"site_file": (io.BytesIO(site_a), "选址红线.geojson")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    assert 'data-verdict="prohibited"' in client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_bad_site_gets_a_message_not_a_traceback(client_as):
    client = client_as("officer")
    response = client.post("/sitecheck/", data={"site_text": "POLYGON ((1 2, 3 4"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Traceback" not in page
    nothing = client.post("/sitecheck/", data={})
    assert nothing.status_code == 400 and "没有给出用地范围" in nothing.get_data(as_text=True)


def test_an_approval_moves_through_its_states_with_the_override_rule(client_as):
    officer = client_as("officer")
    code = new_code()
    site = (SAMPLE_DIR / "sites" / "site_a.geojson").read_bytes()  # in red line class I: prohibited
    created = officer.post("/approvals/new", data={"code": code, "name": "测试酒店", "applicant": "测试公司",
                                                   "stage": "用地预审", "site_file": (io.BytesIO(site), "红线.geojson")},
                           content_type="multipart/form-data")
    assert created.status_code == 302
    assert officer.post(f"/approvals/{code}/transition", data={"status": "under_review", "reason": "受理"}).status_code == 302
    check = officer.post("/sitecheck/", data={"site_text": json.dumps(json.loads(site)["features"][0]["geometry"]),
                                              "approval": code})
    assert check.status_code == 302
    refused = officer.post(f"/approvals/{code}/transition", data={"status": "approved", "reason": "同意"})
    assert refused.status_code == 409 and "不能直接批准" in refused.get_data(as_text=True)
    assert client_as("viewer").post(f"/approvals/{code}/transition",
                                    data={"status": "approved", "reason": "x"}).status_code == 403
    done = officer.post(f"/approvals/{code}/transition", data={"status": "approved", "reason": "同意",
                                                               "officer": "陈晓燕", "override": "专题会议纪要第3号"})
    assert done.status_code == 302
    page = officer.get(f"/approvals/{code}").get_data(as_text=True)
    assert 'data-status="approved"' in page and "override" in page and "专题会议纪要第3号" in page


def test_approvals_import_shows_bad_rows_by_line(client_as):
    csv_text = ("项目代码,项目名称,申请单位,审批阶段,状态\n"
                f"{new_code()},网页导入项目,某单位,用地预审,submitted\nbad-code,坏行,某单位,用地预审,submitted\n")
    response = client_as("officer").post("/approvals/import", data={"file": (io.BytesIO(csv_text.encode("gbk")),
                                                                            "审批导出.csv")},
                                         content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "新增 1" in page and "行 3" in page and "bad-code" in page


def test_the_dashboard_shows_charts_and_two_plan_differences(client_as, web_store_url):
    from multiplan.statistics import county_statistics
    from multiplan.store import open_store

    page = client_as("viewer").get("/stats/?county=469099").get_data(as_text=True)
    assert 'id="chart-classes"' in page and 'id="chart-rules"' in page and 'id="two-plan"' in page
    with open_store(web_store_url) as store:  # other tests may have loaded plans: compare with the engine now
        stats = county_statistics(store, "469099")
    labels = {"both_construction": "两规均为建设用地", "urban_construction_land_use_not": "城规建设、土规非建设"}
    for row in stats["two_plan_differences"]:
        if row["class"] in labels:
            assert labels[row["class"]] in page
    assert stats["conflicts_by_rule"] and all(r["rule"] in page for r in stats["conflicts_by_rule"])


def test_an_admin_adds_a_user_and_issues_a_token_that_works(client_as):
    admin = client_as("admin")
    name = f"u{uuid.uuid4().hex[:8]}"
    assert admin.post("/admin/users", data={"username": name, "password": "long-enough-1", "role": "viewer",
                                            "display_name": "新用户"}).status_code == 302
    page = admin.post(f"/admin/users/{name}/token", data={"label": "测试"}).get_data(as_text=True)
    token = re.search(r"<code>(mpt_[^<]+)</code>", page).group(1)
    fresh = client_as(None)
    assert fresh.get("/plans/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert admin.post(f"/admin/users/{name}/revoke").status_code == 302
    assert fresh.get("/plans/", headers={"Authorization": f"Bearer {token}"}).status_code == 302


def test_every_change_is_audited(client_as, web_store_url):
    from multiplan.store import open_store

    client_as("planner").post("/conflicts/CNOSUCH/opinion", data={"author": "区政府", "text": "x"})
    with open_store(web_store_url) as store:
        entries = [e for e in store.audit_log() if e.action == "web:conflicts.opinion"]
    assert entries and entries[-1].actor == "planner" and entries[-1].detail["status"] == 404


def test_data_from_plans_is_escaped(client_as, web_store_url):
    from multiplan.approvals import create_approval
    from multiplan.store import open_store

    code = new_code()
    with open_store(web_store_url) as store:
        create_approval(store, {"code": code, "name": "<script>alert(1)</script>", "applicant": "<b>x</b>",
                                "stage": "用地预审"})
    page = client_as("viewer").get(f"/approvals/{code}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
