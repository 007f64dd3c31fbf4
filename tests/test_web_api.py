"""The HTTP API /api/v1: every route role by role, the three ways to authenticate, filters and paging against
the store's own answers, site checks that give the CLI's bytes, the approval workflow, statistics, errors."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
import shapely

from multiplan import approvals, users
from multiplan.cli.demo import SAMPLE_DIR
from tests.conftest import WEB_PASSWORD

API = "/api/v1"
ROLES = ("viewer", "planner", "officer", "admin")
#: The sample approval whose site lies on permanent basic farmland.
FARMLAND_CODE = "2024-469099-59-01-000156"
#: A sample approval whose site is compliant.
COMPLIANT_CODE = "2024-469099-70-03-000118"


# -- helpers ---------------------------------------------------------------------------------------
@pytest.fixture
def store(web_app):
    return web_app.extensions["multiplan_store"]


@pytest.fixture
def token(store):
    """``token(role)``: a fresh API token of the user of that role."""
    return lambda role: users.issue_token(store, role, "api test", "test")


@pytest.fixture
def api(web_app, token):
    """``api(role)``: a client sending that role's Bearer token on every request (``None``: no credentials)."""
    class Client:
        def __init__(self, role):
            self.client = web_app.test_client()
            self.headers = {"Authorization": f"Bearer {token(role)}"} if role else {}

        def __getattr__(self, method):
            def call(path, headers=None, **kwargs):
                return getattr(self.client, method)(API + path, headers={**self.headers, **(headers or {})},
                                                    **kwargs)
            return call
    return Client


def sample_sites() -> dict[str, str]:
    return {fields["code"]: fields["site"] for _, fields in approvals.read_export(SAMPLE_DIR / "approvals.csv")}


def new_code(store) -> str:
    """A project code no record has yet (the store is shared by the whole session)."""
    while True:
        code = f"2099-469099-99-{secrets.randbelow(100):02d}-{secrets.randbelow(10**6):06d}"
        if not store.select_records("mp_approvals", {"code": code}):
            return code


def is_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json
    body = response.get_json()
    # (web.access's 401 answer has no "status" member yet)
    assert body.get("status", status) == status and body["error"] and body["message"]
    assert "Traceback" not in body["message"]
    return body


def all_pages(client, path: str, per_page: int) -> list[dict]:
    items, page = [], 1
    while True:
        sep = "&" if "?" in path else "?"
        body = client.get(f"{path}{sep}page={page}&per_page={per_page}").get_json()
        items += body["items"]
        assert len(body["items"]) <= per_page
        if page >= body["pages"]:
            assert len(items) == body["total"]
            return items
        page += 1


# -- who may do what -------------------------------------------------------------------------------
def _routes(store) -> list[tuple[str, str, dict | None, str]]:
    """Every route: (method, path, JSON body, who may call it). Bodies of writes are incomplete, so a caller
    who gets past the role check gets a 400 and nothing changes."""
    case = store.conflicts()[0]["conflict_id"]
    check = store.select_records("mp_site_checks")[0]["id"]
    return [
        ("get", "/layers", None, "any"), ("get", "/layers/farmland", None, "any"),
        ("get", "/layers/farmland/versions", None, "any"), ("get", "/layers/farmland/versions/1", None, "any"),
        ("get", "/conflicts?per_page=5", None, "any"), ("get", f"/conflicts/{case}", None, "any"),
        ("post", f"/conflicts/{case}/transition", {"status": "under_coordination"}, "planner"),
        ("post", "/site-checks", {"project_code": FARMLAND_CODE, "site": "POLYGON ((1 2, 3"}, "officer"),
        ("get", f"/site-checks/{check}", None, "any"), ("get", f"/site-checks/{check}/report.json", None, "any"),
        ("get", f"/site-checks/{check}/report.html", None, "any"),
        ("get", f"/site-checks/{check}/report.pdf", None, "any"),
        ("get", "/approvals", None, "any"), ("get", f"/approvals/{FARMLAND_CODE}", None, "any"),
        ("post", "/approvals", {"name": "缺少项目代码"}, "officer"),
        ("post", f"/approvals/{FARMLAND_CODE}/transition", {"status": "approved"}, "officer"),
        ("get", "/statistics", None, "any"), ("get", "/openapi.json", None, "public"),
    ]


def test_every_route_answers_each_role_as_declared(api, store):
    for method, path, body, who in _routes(store):
        anonymous = getattr(api(None), method)(path, json=body)
        if who == "public":
            assert anonymous.status_code == 200, path
        else:
            is_error(anonymous, 401)
            assert "Bearer" in anonymous.headers["WWW-Authenticate"]
        for role in ROLES:
            response = getattr(api(role), method)(path, json=body)
            allowed = who in ("any", "public") or role in (who, "admin")
            if not allowed:
                is_error(response, 403)
            elif method == "post":
                is_error(response, 400)  # past the role check, stopped by the incomplete body
            else:
                assert response.status_code == 200, (path, role, response.get_data(as_text=True)[:300])


def test_every_api_route_is_in_the_table_above(web_app, store):
    tested = {path.split("?")[0] for _, path, _, _ in _routes(store)}
    rules = [r for r in web_app.url_map.iter_rules() if r.rule.startswith(API)]
    for rule in rules:
        pattern = rule.rule[len(API):]
        assert any(_matches(pattern, path) for path in tested), f"{rule.rule} is not covered"


def _matches(pattern: str, path: str) -> bool:
    import re

    regex = re.sub(r"<(?:\w+:)?\w+>", r"[^/]+", re.escape(pattern).replace(r"\<", "<").replace(r"\>", ">"))
    return re.fullmatch(regex, path) is not None


def test_tokens_and_basic_auth_work_and_wrong_ones_do_not(web_app, store, token):
    client = web_app.test_client()
    good = client.get(f"{API}/layers", headers={"Authorization": f"Bearer {token('viewer')}"})
    assert good.status_code == 200 and good.is_json
    is_error(client.get(f"{API}/layers", headers={"Authorization": "Bearer mpt_not-a-token"}), 401)
    basic = base64.b64encode(f"officer:{WEB_PASSWORD}".encode()).decode()
    assert client.get(f"{API}/layers", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    wrong = base64.b64encode(b"officer:wrong-password").decode()
    is_error(client.get(f"{API}/layers", headers={"Authorization": f"Basic {wrong}"}), 401)
    is_error(client.get(f"{API}/layers", headers={"Authorization": "Basic %%%"}), 401)
    # Basic may write too (system clients without tokens): past the role check to the body's 400
    is_error(client.post(f"{API}/approvals", json={}, headers={"Authorization": f"Basic {basic}"}), 400)
    # a revoked token stops working (a user of this test's own: other tests keep their tokens)
    if not store.select_records("mp_users", {"username": "api_revoked"}):
        users.add_user(store, "api_revoked", WEB_PASSWORD, "viewer", actor="test")
    revoked = users.issue_token(store, "api_revoked", "api test", "test")
    assert client.get(f"{API}/layers", headers={"Authorization": f"Bearer {revoked}"}).status_code == 200
    users.revoke_tokens(store, "api_revoked", "test")
    # revoked elsewhere (here: straight in the store): the app trusts what it checked for CREDENTIALS_TTL_S
    assert client.get(f"{API}/layers", headers={"Authorization": f"Bearer {revoked}"}).status_code == 200
    from web.access import forget_credentials

    with web_app.app_context():
        forget_credentials()  # what the TTL running out, or a revocation through the admin pages, does
    is_error(client.get(f"{API}/layers", headers={"Authorization": f"Bearer {revoked}"}), 401)


def test_a_session_cookie_reads_but_cannot_write(client_as):
    client = client_as("admin")
    assert client.get(f"{API}/layers").status_code == 200
    for path, body in ((f"{API}/approvals", {}), (f"{API}/site-checks", {"site": "POLYGON ((1 2, 3"})):
        is_error(client.post(path, json=body), 403)


def test_the_openapi_document_is_public(api):
    body = api(None).get("/openapi.json").get_json()
    assert body["openapi"] == "3.0.3" and "/site-checks" in body["paths"]


# -- plans -----------------------------------------------------------------------------------------
def test_layers_and_versions_are_the_stores(api, store):
    from multiplan.specs import LAYER_IDS

    client = api("viewer")
    listed = client.get("/layers").get_json()["items"]
    assert [entry["id"] for entry in listed] == list(LAYER_IDS)
    for entry in listed:
        versions = store.versions(entry["id"])
        assert entry["current_version"] == (versions[-1].version if versions else None)
        assert entry["versions"] == len(versions) and set(entry["title"]) == {"zh", "en"}
    farmland = client.get("/layers/farmland/versions").get_json()["items"]
    assert [v["version"] for v in farmland] == [v.version for v in store.versions("farmland")]
    detail = client.get("/layers/farmland/versions/1").get_json()
    record = store.version("farmland", 1)
    assert detail["report"] == json.loads(json.dumps(record.report))
    assert detail["source_sha256"] == record.source_sha256 and detail["n_loaded"] == record.n_loaded
    assert "report" not in farmland[0]


def test_unknown_layers_and_versions_are_404s_never_sql(api):
    client = api("viewer")
    for path in ("/layers/nope", "/layers/farmland;DROP%20TABLE%20mp_users/versions", "/layers/plan_farmland/versions",
                 "/layers/farmland/versions/999"):
        body = is_error(client.get(path), 404)
        assert "farmland" in body["message"] or "nope" in body["message"] or "plan_" in body["message"]
    assert client.get("/layers/farmland/versions/abc").status_code == 404


# -- conflicts -------------------------------------------------------------------------------------
def test_conflict_paging_gives_every_case_once_in_the_stores_order(api, store):
    client = api("viewer")
    expected = [c["conflict_id"] for c in store.conflicts()]
    assert [c["conflict_id"] for c in all_pages(client, "/conflicts", 30)] == expected
    first = client.get("/conflicts").get_json()
    assert first["per_page"] == 50 and first["total"] == len(expected) and len(first["items"]) == min(50, len(expected))
    beyond = client.get(f"/conflicts?page={first['pages'] + 1}").get_json()
    assert beyond["items"] == [] and beyond["total"] == len(expected)


@pytest.mark.parametrize("query", ["page=0", "per_page=0", "per_page=501", "per_page=abc", "page=-1", "page=1.5",
                                   "bbox=1,2,3", "bbox=a,b,c,d", "bbox=3,2,1,4", "bbox=nan,1,2,3", "status=closed",
                                   "severity=fatal", "rule=no_such_rule", "geometry=perhaps"])
def test_bad_conflict_queries_are_400s_naming_the_parameter(api, query):
    body = is_error(api("viewer").get(f"/conflicts?{query}&lang=en"), 400)
    assert query.split("=")[0] in body["message"]


def test_conflict_filters_agree_with_the_store(api, store):
    client = api("viewer")
    cases = store.conflicts()
    rule, county = cases[0]["rule"], cases[0]["xzqdm"]
    ids = lambda query: [c["conflict_id"] for c in all_pages(client, f"/conflicts?{query}", 500)]  # noqa: E731
    assert ids(f"rule={rule}") == [c["conflict_id"] for c in store.conflicts(rule=rule)]
    assert ids("status=open") == [c["conflict_id"] for c in store.conflicts(status="open")]
    assert ids("severity=forbidden") == [c["conflict_id"] for c in cases if c["severity"] == "forbidden"]
    assert ids(f"county={county}") == [c["conflict_id"] for c in cases if c["xzqdm"] == county]
    assert ids("county=000000") == []
    both = ids(f"rule={rule}&severity={cases[0]['severity']}&county={county}")
    assert both == [c["conflict_id"] for c in cases if c["rule"] == rule and c["xzqdm"] == county]
    # bbox: the cases whose patches in the latest run meet the box, computed here from the patches themselves
    run = store.detection_runs()[-1]["id"]
    patches = store.read_patches(int(run))
    minx, miny, maxx, maxy = patches.total_bounds
    box = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    inside = set(patches["conflict_id"][shapely.intersects(patches.geometry.values, shapely.box(*box))])
    found = ids("bbox=" + ",".join(repr(float(v)) for v in box))
    assert found == [c["conflict_id"] for c in cases if c["conflict_id"] in inside]
    assert 0 < len(found) < len(cases)
    assert ids("bbox=100,10,100.1,10.1") == []


def test_conflicts_with_geometry_carry_their_patches(api, store):
    page = api("viewer").get("/conflicts?per_page=5&geometry=true").get_json()["items"]
    assert "geometry" not in api("viewer").get("/conflicts?per_page=5").get_json()["items"][0]
    patches = store.read_patches(int(store.detection_runs()[-1]["id"]))
    for item in page:
        shape = shapely.geometry.shape(item["geometry"])
        assert shape.geom_type in ("Polygon", "MultiPolygon")
        mine = shapely.union_all(patches[patches["conflict_id"] == item["conflict_id"]].geometry.values)
        assert shape.symmetric_difference(mine).area <= 1e-9 * mine.area


def test_a_conflict_shows_its_history_patches_and_approvals(api, store):
    site_check = next(c for c in store.select_records("mp_check_conflicts"))
    cid = site_check["conflict_id"]
    body = api("viewer").get(f"/conflicts/{cid}").get_json()
    assert body["conflict_id"] == cid
    assert [e["kind"] for e in body["events"]] == [e["kind"] for e in store.conflict_events(cid)]
    assert body["patches"]["type"] == "FeatureCollection" and body["patches"]["features"]
    assert all(f["properties"]["run_id"] == body["last_run"] for f in body["patches"]["features"])
    assert body["approvals"] == approvals.approvals_touching(store, cid) and body["approvals"]
    is_error(api("viewer").get("/conflicts/C000000000000"), 404)


def test_planners_move_conflicts_along_the_ledger(api, store):
    cid = [c for c in store.conflicts(status="open")][-1]["conflict_id"]
    planner = api("planner")
    moved = planner.post(f"/conflicts/{cid}/transition", json={"status": "under_coordination", "reason": "协调中"})
    assert moved.status_code == 200 and moved.get_json()["status"] == "under_coordination"
    assert store.conflict_events(cid)[-1]["actor"] == "planner"
    body = is_error(planner.post(f"/conflicts/{cid}/transition?lang=en",
                                 json={"status": "under_coordination", "reason": "again"}), 409)
    assert "under_coordination" in body["message"]
    is_error(planner.post(f"/conflicts/{cid}/transition", json={"status": "done", "reason": "x"}), 400)
    is_error(planner.post(f"/conflicts/{cid}/transition", json={"status": "open"}), 400)
    is_error(planner.post(f"/conflicts/{cid}/transition", data="not json"), 400)
    is_error(planner.post("/conflicts/C000000000000/transition", json={"status": "open", "reason": "x"}), 404)
    back = planner.post(f"/conflicts/{cid}/transition", json={"status": "open", "reason": "退回"})
    assert back.status_code == 200 and [c for c in store.conflicts() if c["conflict_id"] == cid][0]["status"] == "open"


# -- site checks -----------------------------------------------------------------------------------
def test_a_site_check_gives_the_clis_report_and_is_filed_under_its_approval(api, store, web_app):
    from multiplan.sitecheck import canonical_json, check_site
    from multiplan.sites import site_from_text

    wkt = sample_sites()[FARMLAND_CODE]
    officer = api("officer")
    response = officer.post("/site-checks", json={"project_code": FARMLAND_CODE, "site": wkt})
    assert response.status_code == 201, response.get_data(as_text=True)[:500]
    body = response.get_json()
    report = body["report"]
    expected = check_site(site_from_text(wkt), store, rasters={"dem": web_app.config["DEM"]})
    assert canonical_json(report) == canonical_json(expected)
    # the report's bytes inside the response are its canonical bytes
    assert canonical_json(expected, indent=None).encode() in response.get_data()
    assert report["verdict"] == "prohibited" and "farmland" in report["verdict_rules"]
    check_id = body["check_id"]
    assert response.headers["Location"].endswith(f"{API}/site-checks/{check_id}")

    record = officer.get(f"/approvals/{FARMLAND_CODE}").get_json()
    assert record["checks"][-1]["id"] == check_id and record["checks"][-1]["verdict"] == "prohibited"
    assert record["events"][-1]["kind"] == "check" and record["events"][-1]["check_id"] == check_id
    assert record["events"][-1]["actor"] == "officer"
    assert {c["conflict_id"] for c in record["conflicts"]} == {c["conflict_id"] for c in report["conflicts"]}

    stored = api("viewer").get(f"/site-checks/{check_id}").get_json()
    assert stored["report"] == report and stored["approval_code"] == FARMLAND_CODE
    assert shapely.geometry.shape(stored["site"]).equals(site_from_text(wkt).geometry)
    as_json = api("viewer").get(f"/site-checks/{check_id}/report.json")
    assert as_json.mimetype == "application/json"
    assert as_json.get_data() == (canonical_json(expected) + "\n").encode("utf-8")


def test_site_check_reports_come_as_html_and_pdf(api, store):
    check = store.select_records("mp_site_checks", {"approval_code": FARMLAND_CODE})[-1]["id"]
    client = api("viewer")
    html = client.get(f"/site-checks/{check}/report.html")
    assert html.status_code == 200 and html.mimetype == "text/html"
    assert "不符合" in html.get_data(as_text=True)
    english = client.get(f"/site-checks/{check}/report.html?lang=en").get_data(as_text=True)
    assert "prohibited" in english
    pdf = client.get(f"/site-checks/{check}/report.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.get_data()[:5] == b"%PDF-"
    for fmt in ("json", "html", "pdf"):
        is_error(client.get(f"/site-checks/99999999/report.{fmt}"), 404)
    is_error(client.get("/site-checks/99999999"), 404)
    is_error(client.get(f"/site-checks/{2**70}"), 404)
    assert client.get(f"/site-checks/{check}/report.docx").status_code == 404


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"project_code": FARMLAND_CODE, "site": "POLYGON ((110.29 19.82, 110.30"}, 400, ["WKT", "Expected number"]),
    ({"project_code": FARMLAND_CODE, "site": "LINESTRING (110.29 19.82, 110.30 19.83)"}, 400, ["LineString"]),
    ({"project_code": FARMLAND_CODE, "site": {"type": "Point", "coordinates": [110.3, 19.8]}}, 400, ["Point"]),
    ({"project_code": FARMLAND_CODE, "site": 42}, 400, ["site"]),
    ({"project_code": FARMLAND_CODE, "site": "POLYGON ((1 1, 2 1, 2 2, 1 1))"}, 400, ["Hainan"]),
    ({"project_code": FARMLAND_CODE, "use": "airport"}, 400, ["use"]),
    ({"project_code": FARMLAND_CODE, "as_of": "2024-13-01"}, 400, ["as_of"]),
    ({"project_code": FARMLAND_CODE, "reach_m": -5}, 400, ["reach_m"]),
    ({"project_code": "2099-469099-00-00-000000", "site": "POLYGON ((1 2, 3"}, 404, ["2099-469099-00-00-000000"]),
    ({"site": None}, 400, ["site"]),
    ([1, 2], 400, ["JSON"]),
])
def test_bad_site_check_requests_say_what_is_wrong(api, store, body, status, words):
    before = len(store.select_records("mp_site_checks"))
    response = api("officer").post("/site-checks", json=body, headers={"Accept-Language": "en"})
    message = is_error(response, status)["message"]
    assert all(w in message for w in words), message
    assert len(store.select_records("mp_site_checks")) == before


def test_messages_follow_the_requested_language(api):
    client = api("officer")
    zh = is_error(client.post("/site-checks", json={"project_code": FARMLAND_CODE, "site": "POLYGON ((1"}), 400)
    assert "不是有效的 WKT" in zh["message"]
    en = client.post("/site-checks?lang=en", json={"project_code": FARMLAND_CODE, "site": "POLYGON ((1"})
    assert "is not valid WKT" in is_error(en, 400)["message"]
    header = api("officer").get("/layers/nope", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "Unknown layer" in is_error(header, 404)["message"]
    chinese = api("officer").get("/layers/nope", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "未知图层" in is_error(chinese, 404)["message"]


def test_a_browser_session_keeps_the_language_chosen_in_the_pages(client_as):
    browser = client_as("viewer")
    browser.get("/?lang=en")
    answer = browser.get(f"{API}/layers/nope", headers={"Accept-Language": "zh-CN,zh"})
    assert "Unknown layer" in is_error(answer, 404)["message"]


# -- approvals -------------------------------------------------------------------------------------
def test_approval_listing_pages_and_filters_like_the_store(api, store):
    client = api("viewer")
    everything = approvals.list_approvals(store)
    assert [a["code"] for a in all_pages(client, "/approvals", 3)] == [a["code"] for a in everything]
    for query, kwargs in (("status=approved", {"status": "approved"}), ("stage=用地预审", {"stage": "用地预审"}),
                          ("status=审查中", {"status": "under_review"})):
        found = all_pages(client, f"/approvals?{query}", 500)
        assert [a["code"] for a in found] == [a["code"] for a in approvals.list_approvals(store, **kwargs)]
    row = next(a for a in all_pages(client, "/approvals", 500) if a["code"] == COMPLIANT_CODE)
    assert row["has_site"] is True and row["latest_verdict"] == "compliant" and "site" not in row
    for query in ("status=lost", "stage=moon", "per_page=501", "page=0"):
        is_error(client.get(f"/approvals?{query}"), 400)
    is_error(client.get("/approvals/2099-000000-00-00-000000"), 404)


def test_an_approval_shows_its_record_history_checks_conflicts_and_site(api, store):
    body = api("viewer").get(f"/approvals/{FARMLAND_CODE}").get_json()
    record = approvals.get_approval(store, FARMLAND_CODE)
    assert body["status"] == record["status"] and body["name"] == record["name"]
    assert [c["id"] for c in body["checks"]] == [c["id"] for c in record["checks"]]
    assert [e["kind"] for e in body["events"]] == [e["kind"] for e in record["events"]]
    assert [c["conflict_id"] for c in body["conflicts"]] == record["conflicts"]
    assert shapely.geometry.shape(body["site"]).equals(record["site"])
    assert body["checks"][0]["links"]["pdf"].endswith(f"/site-checks/{body['checks'][0]['id']}/report.pdf")


def test_officers_create_approvals_check_them_and_need_an_override_to_approve_a_prohibited_site(api, store):
    code = new_code(store)
    officer = api("officer")
    site = shapely.geometry.mapping(shapely.from_wkt(sample_sites()[FARMLAND_CODE]))
    created = officer.post("/approvals", json={"code": code, "name": "测试冷库项目", "stage": "用地预审",
                                               "applicant": "测试单位", "applied_on": "2025-01-02",
                                               "site": {"type": "Feature", "properties": {}, "geometry": site}})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.headers["Location"].endswith(f"{API}/approvals/{code}")
    body = created.get_json()
    assert body["status"] == "submitted" and body["events"][0]["actor"] == "officer" and body["site"]
    is_error(officer.post("/approvals", json={"code": code, "name": "again", "stage": "用地预审"}), 409)

    # the recorded site is checked when the body gives none
    checked = officer.post("/site-checks", json={"project_code": code})
    assert checked.status_code == 201 and checked.get_json()["report"]["verdict"] == "prohibited"
    move = officer.post(f"/approvals/{code}/transition", json={"status": "under_review", "reason": "受理"})
    assert move.status_code == 200 and move.get_json()["status"] == "under_review"
    blocked = is_error(officer.post(f"/approvals/{code}/transition?lang=en",
                                    json={"status": "approved", "reason": "同意"}), 409)
    assert "override" in blocked["message"]
    approved = officer.post(f"/approvals/{code}/transition", json={
        "status": "approved", "reason": "省政府专题会议同意", "officer": "王海涛", "override": "重大民生项目"})
    assert approved.status_code == 200
    body = approved.get_json()
    assert body["status"] == "approved" and body["officer"] == "王海涛" and body["decided_on"]
    assert body["events"][-1]["kind"] == "override" and body["events"][-1]["check_id"] == checked.get_json()["check_id"]
    is_error(officer.post(f"/approvals/{code}/transition", json={"status": "withdrawn", "reason": "x"}), 409)


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "stage": "用地预审"}, "code"),
    ({"code": "2024-1", "name": "x", "stage": "用地预审"}, "2024-1"),
    ({"code": "NEW", "name": "x"}, "stage"),
    ({"code": "NEW", "name": "x", "stage": "moon"}, "moon"),
    ({"code": "NEW", "name": "x", "stage": "用地预审", "status": "lost"}, "lost"),
    ({"code": "NEW", "name": "x", "stage": "用地预审", "applied_on": "yesterday"}, "yesterday"),
    ({"code": "NEW", "name": "x", "stage": "用地预审", "site": "POINT (110 19)"}, "Point"),
    ({"code": "NEW", "name": 5, "stage": "用地预审"}, "name"),
])
def test_bad_approvals_are_refused_with_400s(api, store, body, field):
    body = {k: (new_code(store) if v == "NEW" else v) for k, v in body.items()}
    message = is_error(api("officer").post("/approvals?lang=en", json=body), 400)["message"]
    assert field in message
    if "code" in body and isinstance(body["code"], str):
        assert not store.select_records("mp_approvals", {"code": body["code"]})


def test_approval_transitions_check_their_input(api, store):
    officer = api("officer")
    is_error(officer.post("/approvals/2099-000000-00-00-000000/transition", json={"status": "approved",
                                                                                 "reason": "x"}), 404)
    is_error(officer.post(f"/approvals/{FARMLAND_CODE}/transition", json={"status": "lost", "reason": "x"}), 400)
    is_error(officer.post(f"/approvals/{FARMLAND_CODE}/transition", json={"status": "approved"}), 400)
    is_error(officer.post(f"/approvals/{COMPLIANT_CODE}/transition", json={"status": "submitted",
                                                                          "reason": "x"}), 409)


# -- statistics ------------------------------------------------------------------------------------
def test_statistics_are_the_one_maps_sums(api, store):
    from multiplan.onemap import build_one_map, class_areas, conflict_areas, two_plan_differences
    from multiplan.specs import load_layer_specs

    client = api("viewer")
    body = client.get("/statistics").get_json()
    run = store.detection_runs()[-1]
    versions = json.loads(run["versions"]) if isinstance(run["versions"], str) else run["versions"]
    assert body["detection_run"] == int(run["id"]) and body["versions"] == versions
    specs = load_layer_specs()
    frames = {lid: store.read_features(lid, n) for lid, n in versions.items() if specs[lid].geometry == "polygon"}
    patches = store.read_patches(int(run["id"]))
    one_map = build_one_map(frames, patches)
    county = body["counties"][0]
    classes = class_areas(one_map)
    expected = classes[(classes["layer"] == "farmland") & (classes["xzqdm"] == county)]["area_m2"].sum()
    got = sum(r["area_m2"] for r in body["class_areas"] if r["layer"] == "farmland" and r["xzqdm"] == county)
    assert got == pytest.approx(expected, rel=1e-9) and got > 0
    two = two_plan_differences(one_map)
    assert {r["class"]: r["area_m2"] for r in body["two_plan_differences"] if r["xzqdm"] == county} == pytest.approx(
        {r["class"]: r["area_m2"] for r in two.to_dict("records") if r["xzqdm"] == county})
    areas = conflict_areas(one_map)
    by_rule = {r["rule"]: r for r in body["conflicts"]["by_rule"] if r["xzqdm"] == county}
    for row in areas[areas["xzqdm"] == county].to_dict("records"):
        assert by_rule[row["rule"]]["area_m2"] == pytest.approx(row["area_m2"])
    mine = patches[patches["xzqdm"] == county]
    status = {c["conflict_id"]: c["status"] for c in store.conflicts()}
    for rule, group in mine.groupby("rule"):
        assert by_rule[rule]["count"] == group["conflict_id"].nunique()
        assert by_rule[rule]["open"] == len({c for c in group["conflict_id"]
                                             if status[c] in ("open", "under_coordination")})
        assert by_rule[rule]["severity"] == group["severity"].iloc[0]
    severities = body["conflicts"]["by_severity"]
    assert sum(r["count"] for r in severities if r["xzqdm"] == county) == mine["conflict_id"].nunique()
    faces = one_map[one_map["rules"].notna() & (one_map["xzqdm"] == county)]
    assert sum(r["area_m2"] for r in severities if r["xzqdm"] == county) == pytest.approx(faces["area_m2"].sum())
    # one county, and the cache serves the second call
    only = client.get(f"/statistics?county={county}").get_json()
    assert only["county"] == county and all(r["xzqdm"] == county for r in only["class_areas"])
    assert is_error(client.get("/statistics?county=999999&lang=en"), 404)["message"].startswith("There is no county")
