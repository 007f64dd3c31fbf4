"""The web application's core: logging in, roles checked on every request, CSRF, CSP, languages, errors."""

from __future__ import annotations

import re

import pytest

from tests.conftest import WEB_PASSWORD


def test_pages_need_a_login_and_the_login_works(client_as):
    anonymous = client_as(None)
    response = anonymous.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    wrong = anonymous.post("/login", data={"username": "viewer", "password": "wrong"})
    assert wrong.status_code == 200 and "用户名或密码错误" in wrong.get_data(as_text=True)
    assert anonymous.get("/").status_code == 302
    client = client_as("viewer")
    page = client.get("/")
    assert page.status_code == 200 and "浏览" in page.get_data(as_text=True)  # the role, shown in the header


def test_a_redirect_after_login_stays_on_this_site(client_as):
    client = client_as(None)
    response = client.post("/login?next=https://evil.example/", data={"username": "viewer", "password": WEB_PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_disabled_account_cannot_log_in_or_keep_its_session(web_app, web_store_url, client_as):
    from multiplan import users
    from multiplan.store import open_store

    with open_store(web_store_url) as store:
        users.add_user(store, "temp_user", WEB_PASSWORD, "viewer") if "temp_user" not in {
            u["username"] for u in users.list_users(store)} else users.update_user(store, "temp_user", "t", active=True)
    client = web_app.test_client()
    assert client.post("/login", data={"username": "temp_user", "password": WEB_PASSWORD}).status_code == 302
    assert client.get("/").status_code == 200
    with open_store(web_store_url) as store:
        users.update_user(store, "temp_user", "test", active=False)
    assert client.get("/").status_code == 302


def test_every_page_sends_a_content_security_policy(client_as):
    response = client_as("viewer").get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_forms_without_a_csrf_token_are_refused(make_app):
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    assert client.post("/login", data={"username": "viewer", "password": WEB_PASSWORD}).status_code == 400
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": "viewer", "password": WEB_PASSWORD, "csrf_token": token})
    assert response.status_code == 302


def test_unknown_pages_get_a_friendly_page_and_json_clients_get_json(client_as):
    client = client_as("viewer")
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "找不到" in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)
    api = client_as(None).get("/api/v1/layers")
    assert api.status_code == 401 and api.is_json and "WWW-Authenticate" in api.headers


def test_the_language_switch_sticks(client_as):
    client = client_as("viewer")
    assert "一张图" in client.get("/").get_data(as_text=True)
    assert "One map" in client.get("/?lang=en").get_data(as_text=True)
    assert "One map" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("role", ["viewer", "planner", "officer"])
def test_only_admins_reach_user_administration(client_as, role):
    assert client_as(role).get("/admin/").status_code == 403
    assert client_as("admin").get("/admin/").status_code == 200
