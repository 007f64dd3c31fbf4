"""The web application in a real headless browser (Debian's chromium driven by Playwright), served by a real
HTTP server on loopback: logging in, uploading a plan, the map with its tiles and popups, a site check drawn
on the map, an approval moved through its states. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import uuid
from pathlib import Path

import pytest

from tests.builders import land_use_frame, write_shapefile, zip_shapefile
from tests.conftest import REQUIRE_POSTGIS, WEB_PASSWORD

CHROMIUM = os.environ.get("MULTIPLAN_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        if REQUIRE_POSTGIS:  # under scripts/test.sh and in CI the browser is required, like PostGIS
            pytest.fail(f"chromium is required for the browser tests: {CHROMIUM} is missing (run scripts/test.sh)")
        pytest.skip("no chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def live_url(web_store_url):
    """The app on a real HTTP server (werkzeug, threaded) on a free loopback port."""
    from werkzeug.serving import make_server

    from multiplan.cli.demo import SAMPLE_DIR
    from web import create_app

    app = create_app({"STORE": web_store_url, "SECRET_KEY": "browser-tests", "DEM": str(SAMPLE_DIR / "dem.tif")})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    app.extensions["multiplan_store"].close()


@pytest.fixture
def page(browser, live_url, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.base = live_url  # type: ignore[attr-defined]
    page.js_errors = errors  # type: ignore[attr-defined]
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()


def login(page, role: str) -> None:
    page.goto(page.base + "/login")
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", WEB_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_log_in_and_out(page):
    page.goto(page.base + "/")
    assert "/login" in page.url
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", "wrong password")
    page.click("#login-form button[type=submit]")
    assert "用户名或密码错误" in page.content()
    login(page, "viewer")
    assert "/login" not in page.url and "浏览" in page.inner_text("header")
    page.click("header form button")
    page.wait_for_url(re.compile(r".*/login"))
    assert page.js_errors == []


def test_the_map_loads_its_tiles_and_opens_popups(page):
    login(page, "viewer")
    page.wait_for_selector("body[data-tiles-loaded='1']", timeout=60_000)
    assert page.locator("input[data-layer='overall']").is_checked()
    tiles = page.evaluate("Array.from(document.querySelectorAll('#onemap canvas, #onemap svg')).length")
    assert tiles > 0
    # search a project by its code: the map zooms to its site and opens the approval's popup
    page.fill("#code-input", "2024-469099-59-01-000156")
    page.press("#code-input", "Enter")
    page.wait_for_selector("body[data-search-done='1']")
    page.wait_for_selector("body[data-popup-loaded='1']")
    popup = page.inner_text(".feature-popup")
    assert "2024-469099-59-01-000156" in popup and "岭北镇农产品冷链物流中心项目" in popup
    page.click(".leaflet-popup-close-button")
    # a click on the map opens what is there (the site, its conflict patch, the plan under it): once the
    # tiles of the new view have arrived, as a click only finds features already drawn
    page.wait_for_load_state("networkidle")
    page.evaluate("document.body.dataset.popupLoaded = ''")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator("#onemap").bounding_box()
    for _ in range(6):  # the canvas draws a moment after its tiles arrive: a user would click again
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + 60)
        try:
            page.wait_for_selector("body[data-popup-loaded='1']", timeout=5_000)
            break
        except PlaywrightTimeout:
            continue
    else:
        pytest.fail("six clicks on the map opened no popup")
    assert page.locator(".feature-popup").count() >= 1
    # switching a layer off and on again works
    page.uncheck("input[data-layer='overall']")
    page.check("input[data-layer='overall']")
    assert page.js_errors == []


def test_upload_a_plan_and_see_its_report(page, tmp_path):
    shp = write_shapefile(land_use_frame(2), tmp_path, "土地利用规划")
    archive = zip_shapefile(shp, tmp_path / "规划成果.zip")
    login(page, "planner")
    page.goto(page.base + "/plans/upload")
    page.select_option("#upload-layer", "land_use")
    page.set_input_files("#upload-file", str(archive))
    page.fill("#upload-label", "浏览器上传")
    page.click("#upload-submit")
    page.wait_for_url(re.compile(r".*/plans/land_use/\d+$"), timeout=60_000)
    text = page.inner_text("main")
    assert "入库报告" in text and "规划成果.zip" in text and "入库 4" in text.replace("\n", " ")
    assert page.js_errors == []


def test_a_failed_upload_shows_why(page, tmp_path):
    bad = tmp_path / "坏文件.zip"
    bad.write_bytes(b"this is not a zip archive")
    login(page, "planner")
    page.goto(page.base + "/plans/upload")
    page.select_option("#upload-layer", "overall")
    page.set_input_files("#upload-file", str(bad))
    page.click("#upload-submit")
    page.wait_for_selector("#upload-error:not([hidden])", timeout=60_000)
    assert "入库失败" in page.inner_text("#upload-error")


def test_run_a_site_check_by_drawing_a_polygon(page):
    login(page, "officer")
    page.goto(page.base + "/sitecheck/")
    page.wait_for_selector("#draw-map[data-ready='1']")
    page.evaluate("window.multiplanDrawMap.setView([19.9083, 110.2858], 16)")
    page.click(".leaflet-draw-draw-polygon")
    box = page.locator("#draw-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-60, -40), (60, -40), (70, 50), (-50, 60)):
        page.mouse.move(cx + dx, cy + dy, steps=4)  # Leaflet.draw wants a move before each click
        page.mouse.down()
        page.mouse.up()
        page.wait_for_timeout(250)
    page.click(".leaflet-draw-actions a:has-text('Finish')")
    page.wait_for_selector("body[data-site-drawn='1']")
    assert '"Polygon"' in page.input_value("#site-text")
    page.click("#run-check")
    page.wait_for_selector("#verdict", timeout=60_000)
    verdict = page.get_attribute("#verdict", "data-verdict")
    assert verdict in ("compliant", "conditional", "prohibited", "unknown")
    page.wait_for_selector("#minimap[data-ready='1']")
    assert page.locator("#overlaps tbody tr").count() >= 1
    assert page.js_errors == []


def test_move_an_approval_through_its_states(page, web_store_url):
    from multiplan.approvals import create_approval
    from multiplan.cli.demo import SAMPLE_DIR
    from multiplan.sites import read_site
    from multiplan.store import open_store

    code = f"2025-460000-48-01-{uuid.uuid4().int % 1_000_000:06d}"
    with open_store(web_store_url) as store:
        create_approval(store, {"code": code, "name": "浏览器测试项目", "applicant": "测试单位", "stage": "用地预审",
                                "site": read_site(SAMPLE_DIR / "sites" / "site_a.geojson").geometry})
    login(page, "officer")
    page.goto(f"{page.base}/approvals/{code}")
    page.wait_for_selector("#minimap[data-ready='1']")
    page.select_option("#transition-status", "under_review")
    page.fill("#transition-reason", "材料齐全,受理")
    page.click("#transition-submit")
    page.wait_for_selector("#approval-status[data-status='under_review']")
    page.click("#check-this-site")
    page.wait_for_selector("#sitecheck-form")
    site_a = json.loads((SAMPLE_DIR / "sites" / "site_a.geojson").read_text("utf-8"))["features"][0]["geometry"]
    page.fill("#site-text", json.dumps(site_a))  # in red line class I: the check prohibits it
    page.click("#run-check")
    page.wait_for_selector("#verdict[data-verdict='prohibited']")
    page.goto(f"{page.base}/approvals/{code}")
    assert page.locator("#approval-checks tbody tr").count() == 1
    page.select_option("#transition-status", "approved")
    page.fill("#transition-reason", "同意")
    page.fill("#transition-officer", "陈晓燕")
    page.click("#transition-submit")
    page.wait_for_load_state("networkidle")
    assert "不能直接批准" in page.content()
    page.goto(f"{page.base}/approvals/{code}")
    page.select_option("#transition-status", "approved")
    page.fill("#transition-reason", "同意")
    page.fill("#transition-officer", "陈晓燕")
    page.fill("#transition-override", "省政府专题会议纪要第5号")
    page.click("#transition-submit")
    page.wait_for_selector("#approval-status[data-status='approved']")
    trail = page.inner_text("#approval-trail")
    assert "under_review" in trail and "approved" in trail and "override" in trail
    assert [e for e in page.js_errors if "409" not in e] == []  # the refused approval answered 409
