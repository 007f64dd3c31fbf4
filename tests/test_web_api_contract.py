"""The OpenAPI document of /api/v1 is kept true: every route is documented with the roles its view declares,
every documented path exists, and schemathesis, generating requests from the document against the app in
process, finds no server error and no response that breaks the documented status codes, types and schemas."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from multiplan import users

API = "/api/v1"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: Generated requests per GET operation (plus the document's own examples): enough to cross every parameter's
#: kinds of value, few enough to stay well under a minute per store.
EXAMPLES = 6


def _documented(document: dict) -> dict[tuple[str, str], dict]:
    return {(path, method.upper()): op for path, item in document["paths"].items()
            for method, op in item.items() if method in ("get", "post", "put", "patch", "delete")}


def _served(app) -> dict[tuple[str, str], str]:
    """(OpenAPI path, method) -> endpoint of every rule under /api/v1."""
    out = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(API):])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out[(path, method)] = rule.endpoint
    return out


@pytest.fixture
def document(web_app):
    response = web_app.test_client().get(f"{API}/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_the_document_is_valid_openapi_3_0(document):
    import jsonschema
    from schemathesis.specs.openapi.definitions import OPENAPI_30  # the OAS 3.0 schema (2019-04-02)

    errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
              for e in jsonschema.Draft4Validator(OPENAPI_30).iter_errors(document)]
    assert errors == []


def test_every_route_is_documented_and_every_documented_operation_is_served(web_app, document):
    assert document["openapi"] == "3.0.3" and document["servers"] == [{"url": API}]
    served, documented = _served(web_app), _documented(document)
    assert sorted(set(served) - set(documented)) == [], "routes missing from the OpenAPI document"
    assert sorted(set(documented) - set(served)) == [], "documented operations the app does not serve"
    for (path, method), op in documented.items():
        in_path = sorted(re.findall(r"{(\w+)}", path))
        assert sorted(p["name"] for p in op.get("parameters", []) if p["in"] == "path") == in_path, (method, path)
        assert op["responses"] and op["operationId"] == served[(path, method)].split(".", 1)[1]


def test_each_operation_documents_the_roles_and_credentials_its_view_takes(web_app, document):
    from web.access import PUBLIC

    served = _served(web_app)
    schemes = set(document["components"]["securitySchemes"])
    assert schemes == {"bearerAuth", "basicAuth", "cookieAuth"}
    for key, op in _documented(document).items():
        roles = web_app.view_functions[served[key]]._roles
        assert set(op["x-roles"]) == set(roles), key
        security = op.get("security", document["security"])
        if PUBLIC in roles:
            assert security == [], key
            continue
        assert {"401", "403"} <= set(op["responses"]), key
        named = {name for requirement in security for name in requirement}
        # a session cookie alone may read, never write (the API takes no CSRF token)
        assert named == ({"bearerAuth", "basicAuth", "cookieAuth"} if key[1] == "GET" else {"bearerAuth", "basicAuth"})


def test_the_site_report_schema_is_the_engines(document):
    from multiplan.sitecheck import report_schema
    from web.openapi import json_schema_to_openapi30

    raw = report_schema()
    documented = document["components"]["schemas"]["SiteReport"]
    assert documented["required"] == raw["required"]
    assert set(documented["properties"]) == set(raw["properties"])
    assert documented["properties"]["as_of"] == json_schema_to_openapi30(raw["properties"]["as_of"], "SiteReport")
    refs = {"SiteReport" + name.title() for name in raw["$defs"]}
    assert refs <= set(document["components"]["schemas"])


def _admin_headers(web_app) -> dict[str, str]:
    token = users.issue_token(web_app.extensions["multiplan_store"], "admin", "contract test", "test")
    return {"Authorization": f"Bearer {token}"}


def _run(strategy, headers: dict[str, str], examples: int, seen: list[int]) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case):
        seen.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)
    check()


def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(web_app):
    headers = _admin_headers(web_app)
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", web_app).include(method="GET")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len([k for k in _served(web_app) if k[1] == "GET"])
    for operation in operations:
        seen: list[int] = []
        examples = schema.get_strategies_from_examples(operation)
        if examples:  # the document's own examples (a real conflict id, check no. 1, ...) once each
            _run(st.one_of(examples), headers, len(examples), seen)
        _run(operation.as_strategy(), headers, EXAMPLES, seen)
        # the admin's token is taken everywhere, and every operation answered at least once with data
        assert 401 not in seen and 403 not in seen, (operation.label, seen)
        assert any(200 <= status < 300 for status in seen), (operation.label, seen)


def test_writes_answer_as_documented(web_app):
    """The POST operations, called once each with real bodies, answer as the document says."""
    from multiplan.approvals import read_export
    from multiplan.cli.demo import SAMPLE_DIR
    from tests.test_web_api import COMPLIANT_CODE, new_code

    store = web_app.extensions["multiplan_store"]
    headers = _admin_headers(web_app)
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", web_app)
    site = {f["code"]: f["site"] for _, f in read_export(SAMPLE_DIR / "approvals.csv")}[COMPLIANT_CODE]
    code = new_code(store)
    calls = [
        ("/approvals", {}, {"code": code, "name": "契约测试项目", "stage": "选址意见书", "site": site}, 201),
        ("/approvals", {}, {"code": code, "name": "契约测试项目", "stage": "选址意见书"}, 409),
        ("/site-checks", {}, {"project_code": code}, 201),
        ("/site-checks", {}, {"project_code": code, "site": "POLYGON ((1 2, 3"}, 400),
        ("/approvals/{code}/transition", {"code": code}, {"status": "under_review", "reason": "受理"}, 200),
        ("/approvals/{code}/transition", {"code": code}, {"status": "approved", "reason": "同意"}, 200),
        ("/approvals/{code}/transition", {"code": code}, {"status": "under_review", "reason": "x"}, 409),
        ("/conflicts/{conflict_id}/transition", {"conflict_id": "C000000000000"}, {"status": "open", "reason": "x"},
         404),
    ]
    for path, params, body, status in calls:
        case = schema[path]["POST"].Case(path_parameters=params, body=body, media_type="application/json")
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code == status, (path, body, response.text[:300])


def test_every_stored_site_report_follows_the_documented_schema(web_app):
    headers = _admin_headers(web_app)
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", web_app)
    operation = schema["/site-checks/{check_id}/report.json"]["GET"]
    for row in web_app.extensions["multiplan_store"].select_records("mp_site_checks"):
        operation.Case(path_parameters={"check_id": row["id"]}).call_and_validate(headers=headers, checks=CHECKS)
