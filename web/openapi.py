"""The OpenAPI 3.0.3 document of ``/api/v1``, built in code from the engine's own lists and schemas.

Layer ids, statuses, stages, severities and the site report's JSON Schema come from the engine, so the
document cannot drift from what the API accepts and returns; tests/test_web_api_contract.py checks that
every route is documented and that responses follow the schemas (schemathesis).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from multiplan import approvals, ledger
from multiplan.onemap import SEVERITY_ORDER
from multiplan.sitecheck import PROJECT_USES, VERDICTS, report_schema
from multiplan.specs import LAYER_IDS

__all__ = ["document", "json_schema_to_openapi30", "READ_ROLES", "WRITE_ROLES"]

READ_ROLES = ["viewer", "planner", "officer", "admin"]
#: The roles each writing operation declares (admins pass everywhere).
WRITE_ROLES = {"conflict_transition": ["planner"], "create_site_check": ["officer"],
               "create_approval": ["officer"], "approval_transition": ["officer"]}
_REF = "#/components/schemas/"
_NULLABLE_TYPES = ("string", "number", "integer", "boolean", "object", "array")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _s(kind: str, nullable: bool = False, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, **extra}
    if nullable:
        out["nullable"] = True
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    out["required"] = list(properties) if required is None else required
    if not out["required"]:
        del out["required"]
    return out


def _array(items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **extra}


# -- the site report's JSON Schema (2020-12) as an OpenAPI 3.0 schema object -----------------------------
def json_schema_to_openapi30(schema: Any, defs_prefix: str) -> Any:
    """Rewrite JSON Schema 2020-12 into the OpenAPI 3.0 dialect: ``type: [T, "null"]`` becomes
    ``nullable``, ``const`` an ``enum``, ``$defs`` references point into ``components/schemas``."""
    if isinstance(schema, list):
        return [json_schema_to_openapi30(s, defs_prefix) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$schema", "$id", "$defs"):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = _REF + defs_prefix + _camel(value.rsplit("/", 1)[-1])
        elif key == "const":
            out["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            kinds = [k for k in value if k != "null"]
            if len(kinds) != 1:
                raise ValueError(f"cannot express type {value} in OpenAPI 3.0")
            out["type"] = kinds[0]
            if "null" in value:
                out["nullable"] = True
        elif key in ("properties", "patternProperties"):
            out[key] = {name: json_schema_to_openapi30(s, defs_prefix) for name, s in value.items()}
        else:
            out[key] = json_schema_to_openapi30(value, defs_prefix)
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {}
    if out.get("nullable") and "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _site_report_schemas() -> dict[str, Any]:
    raw = report_schema()
    schemas = {"SiteReport" + _camel(name): json_schema_to_openapi30(s, "SiteReport")
               for name, s in raw.get("$defs", {}).items()}
    root = json_schema_to_openapi30(raw, "SiteReport")
    root.pop("title", None)
    root["description"] = (raw.get("description", "") + " Schema version "
                           f"{raw['properties']['schema_version'].get('const')}: multiplan/data/site_report.schema.json.")
    schemas["SiteReport"] = root
    return schemas


# -- components ------------------------------------------------------------------------------------
def _schemas() -> dict[str, Any]:
    text = _obj({"zh": _s("string"), "en": _s("string")})
    geometry = _obj({"type": _s("string", enum=["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                                                "MultiPolygon", "GeometryCollection"]),
                     "coordinates": _array({}), "geometries": _array({})}, required=["type"],
                    description="A GeoJSON geometry in EPSG:4490 (longitude, latitude).")
    nullable_geometry = {**copy.deepcopy(geometry), "nullable": True}
    conflict = _obj({
        "conflict_id": _s("string", example="C0E3F19FCF4AB"), "rule": _s("string"),
        "severity": _s("string", enum=list(SEVERITY_ORDER)), "layer_a": _s("string"), "version_a": _s("integer"),
        "feature_a": _s("string", nullable=True), "layer_b": _s("string", nullable=True),
        "version_b": _s("integer", nullable=True), "feature_b": _s("string", nullable=True),
        "xzqdm": _s("string", nullable=True), "status": _s("string", enum=list(ledger.STATUSES)),
        "area_m2": _s("number", nullable=True), "give_way": _s("string", nullable=True),
        "suggestion_zh": _s("string", nullable=True), "suggestion_en": _s("string", nullable=True),
        "first_run": _s("integer", nullable=True), "last_run": _s("integer", nullable=True),
        "updated_at": _s("string", nullable=True),
        "geometry": {**nullable_geometry, "description": "The union of the case's patches in the run that last "
                                                         "found it; only with `geometry=true`."}},
        required=["conflict_id", "rule", "severity", "layer_a", "status", "area_m2"])
    conflict_event = _obj({"at": _s("string"), "actor": _s("string", nullable=True), "kind": _s("string"),
                           "from_status": _s("string", nullable=True), "to_status": _s("string", nullable=True),
                           "run_id": _s("integer", nullable=True), "author": _s("string", nullable=True),
                           "text": _s("string", nullable=True)})
    patch_properties = _obj({
        "run_id": _s("integer"), "rule": _s("string"), "rule_version": _s("integer", nullable=True),
        "severity": _s("string"), **{f"{name}_{side}": _s(kind, nullable=True) for side in ("a", "b")
                                     for name, kind in (("layer", "string"), ("version", "integer"),
                                                        ("feature", "string"), ("class", "string"),
                                                        ("orig", "string"), ("zone", "string"))},
        "xzqdm": _s("string", nullable=True), "area_m2": _s("number", nullable=True),
        "area_ha": _s("number", nullable=True), "area_mu": _s("number", nullable=True),
        "length_inside_m": _s("number", nullable=True), "crossings": _s("integer", nullable=True)},
        required=["run_id", "rule", "severity", "area_m2"])
    feature_collection = _obj({"type": _s("string", enum=["FeatureCollection"]), "features": _array(_obj({
        "type": _s("string", enum=["Feature"]), "geometry": _ref("NullableGeometry"),
        "properties": _ref("PatchProperties")}))})
    links = _obj({"self": _s("string"), "json": _s("string"), "html": _s("string"), "pdf": _s("string")})
    check_summary = _obj({
        "id": _s("integer", format="int64"), "approval_code": _s("string", nullable=True),
        "checked_at": _s("string"), "actor": _s("string", nullable=True),
        "verdict": _s("string", enum=list(VERDICTS)), "content_sha256": _s("string", pattern="^[0-9a-f]{64}$"),
        "site_area_m2": _s("number", nullable=True), "as_of": _s("string", nullable=True), "links": _ref("Links")})
    approval_fields = {
        "code": _s("string", example="2024-469099-59-01-000156"), "name": _s("string", nullable=True),
        "applicant": _s("string", nullable=True), "stage": _s("string", enum=list(approvals.STAGES)),
        "status": _s("string", enum=list(approvals.STATUSES)), "applied_on": _s("string", nullable=True),
        "decided_on": _s("string", nullable=True), "officer": _s("string", nullable=True),
        "notes": _s("string", nullable=True), "created_at": _s("string"), "updated_at": _s("string"),
        "source": _s("string", nullable=True)}
    approval_summary = _obj({**approval_fields, "latest_verdict": _s("string", nullable=True, enum=list(VERDICTS)),
                             "has_site": _s("boolean")})
    approval_event = _obj({"at": _s("string"), "actor": _s("string", nullable=True), "kind": _s("string"),
                           "from_status": _s("string", nullable=True), "to_status": _s("string", nullable=True),
                           "reason": _s("string", nullable=True), "officer": _s("string", nullable=True),
                           "check_id": _s("integer", nullable=True, format="int64"),
                           "detail": _s("object", nullable=True, additionalProperties=True)})
    approval = _obj({**approval_fields, "site": _ref("NullableGeometry"), "events": _array(_ref("ApprovalEvent")),
                     "checks": _array(_ref("SiteCheckSummary")),
                     "conflicts": _array(_obj({"conflict_id": _s("string"), "rule": _s("string", nullable=True),
                                               "severity": _s("string", nullable=True),
                                               "status": _s("string", nullable=True)}),
                                         description="The conflicts the latest site check touched.")})
    layer = _obj({"id": _s("string", enum=list(LAYER_IDS)), "title": _ref("Text"),
                  "geometry": _s("string", enum=["polygon", "line", "point"]), "coverage": _s("boolean"),
                  "precision": _s("string", enum=["exact", "indicative"]), "network": _s("boolean"),
                  "current_version": _s("integer", nullable=True), "versions": _s("integer", minimum=0)})
    version_fields = {
        "layer": _s("string", enum=list(LAYER_IDS)), "version": _s("integer", minimum=1), "label": _s("string"),
        "source_name": _s("string"), "source_sha256": _s("string"), "loaded_at": _s("string"),
        "loaded_by": _s("string"), "status": _s("string"), "n_read": _s("integer"), "n_loaded": _s("integer"),
        "n_rejected": _s("integer"), "crs": _s("string"), "crs_guessed": _s("boolean"), "encoding": _s("string"),
        "encoding_guessed": _s("boolean")}
    area_row = {"xzqdm": _s("string"), "area_m2": _s("number"), "area_ha": _s("number")}
    conflict_count = {"count": _s("integer", minimum=0), "open": _s("integer", minimum=0,
                                                                   description="open or under coordination")}
    statistics = _obj({
        "county": _s("string", nullable=True), "counties": _array(_s("string")),
        "versions": _s("object", additionalProperties=_s("integer")),
        "detection_run": _s("integer", nullable=True),
        "class_areas": _array(_obj({**area_row, "layer": _s("string"), "class": _s("string")})),
        "two_plan_differences": _array(_obj({**area_row, "class": _s("string", enum=[
            "both_construction", "both_non_construction", "urban_construction_land_use_not",
            "land_use_construction_urban_not", "unclear"])})),
        "conflicts": _obj({
            "by_rule": _array(_obj({**area_row, **conflict_count, "rule": _s("string"),
                                    "severity": _s("string", nullable=True, enum=list(SEVERITY_ORDER))})),
            "by_severity": _array(_obj({**area_row, **conflict_count,
                                        "severity": _s("string", enum=list(SEVERITY_ORDER))},
                                       description="Area of the one-map faces whose worst severity this is."))})})
    site_value = {"oneOf": [_ref("Geometry"), _obj({"type": _s("string", enum=["Feature"]),
                                                     "geometry": _ref("Geometry")}, required=["type", "geometry"]),
                            _s("string", description="WKT or EWKT text")],
                  "description": "The site (红线): a GeoJSON geometry, Feature or FeatureCollection, or WKT. Projected "
                                 "coordinates are recognised as for plan files (CGCS2000 Gauss-Krüger zones); `crs` "
                                 "overrides."}
    schemas: dict[str, Any] = {
        "Error": _obj({"error": _s("string"), "message": _s("string", description="in the request's language"),
                       "status": _s("integer")}, required=["error", "message"]),
        "Text": text, "Geometry": geometry, "NullableGeometry": nullable_geometry,
        "Layer": layer, "LayerList": _obj({"items": _array(_ref("Layer"))}),
        "Version": _obj(version_fields),
        "VersionList": _obj({"items": _array(_ref("Version"))}),
        "VersionDetail": _obj({**version_fields, "report": _s("object", additionalProperties=True,
                                                                description="The load report")}),
        "Conflict": conflict, "ConflictEvent": conflict_event, "PatchProperties": patch_properties,
        "PatchCollection": feature_collection,
        "ConflictPage": _page("Conflict"),
        "ConflictDetail": {"allOf": [_ref("Conflict"), _obj({
            "events": _array(_ref("ConflictEvent")), "patches": _ref("PatchCollection"),
            "approvals": _array(_obj({"code": _s("string"), "check_id": _s("integer", format="int64"),
                                      "verdict": _s("string", enum=list(VERDICTS)),
                                      "checked_at": _s("string")}))})]},
        "ConflictTransition": _obj({"status": _s("string", enum=list(ledger.STATUSES)),
                                    "reason": _s("string", minLength=1)}),
        "Links": links, "SiteCheckSummary": check_summary,
        "SiteCheck": {"allOf": [_ref("SiteCheckSummary"), _obj({"site": _ref("NullableGeometry"),
                                                                "report": _ref("SiteReport")})]},
        "SiteCheckCreated": _obj({"check_id": _s("integer", format="int64"), "report": _ref("SiteReport")}),
        "SiteCheckRequest": _obj({
            "project_code": _s("string", pattern=approvals.PROJECT_CODE.pattern,
                               description="项目代码 of a known approval: the check is stored under it (404 if "
                                           "unknown). Without it the check is stored on its own."),
            "site": {**site_value, "description": site_value["description"] + " Without it, the approval's "
                                                                               "recorded site is checked."},
            "crs": _s("string", example="EPSG:4525"),
            "as_of": _s("string", pattern=r"^\d{4}-\d{2}-\d{2}$", description="check against the plan versions "
                                                                              "current at the end of that day"),
            "use": _s("string", enum=list(PROJECT_USES), default="construction"),
            "reach_m": _s("number", minimum=0, exclusiveMinimum=True, maximum=10000, default=500)}, required=[]),
        "ApprovalSummary": approval_summary, "ApprovalEvent": approval_event, "Approval": approval,
        "ApprovalPage": _page("ApprovalSummary"),
        "ApprovalCreate": _obj({
            "code": _s("string", pattern=approvals.PROJECT_CODE.pattern), "name": _s("string"),
            "stage": _s("string", enum=list(approvals.STAGES)),
            "status": _s("string", enum=list(approvals.STATUSES), default="submitted"),
            "applicant": _s("string"), "applied_on": _s("string", pattern=r"^\d{4}-\d{2}-\d{2}"),
            "decided_on": _s("string", pattern=r"^\d{4}-\d{2}-\d{2}"), "officer": _s("string"),
            "notes": _s("string"), "site": site_value, "crs": _s("string")}, required=["code", "name", "stage"]),
        "ApprovalTransition": _obj({
            "status": _s("string", enum=list(approvals.STATUSES)), "reason": _s("string", minLength=1),
            "officer": _s("string"), "override": _s("string", description="needed, with `officer`, to approve "
                                                                            "over a prohibited or unknown check")},
            required=["status", "reason"]),
        "Statistics": statistics,
        "OpenApiDocument": _obj({"openapi": _s("string"), "info": _s("object"), "paths": _s("object")},
                                additionalProperties=True),
    }
    schemas.update(_site_report_schemas())
    return schemas


def _page(item: str) -> dict[str, Any]:
    return _obj({"total": _s("integer", minimum=0), "page": _s("integer", minimum=1),
                 "per_page": _s("integer", minimum=1, maximum=500), "pages": _s("integer", minimum=1),
                 "items": _array(_ref(item))})


# -- paths -----------------------------------------------------------------------------------------
_ERRORS = {"400": "Invalid input (parameters or body); the message says what is wrong.",
           "401": "No credentials, or wrong ones (send a Bearer token or HTTP Basic).",
           "403": "The user's role may not do this (or a cookie-only write).",
           "404": "No such record.", "409": "The record's state does not allow this."}


def _error(code: str) -> dict[str, Any]:
    return {"description": _ERRORS[code], "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False,
           **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description, **extra}


_LANG = _param("lang", "query", _s("string", enum=["zh", "en"]),
               "Language of messages (also `Accept-Language`); Chinese by default.")
_PAGING = [_param("page", "query", _s("integer", minimum=1, default=1), "Page number, from 1."),
           _param("per_page", "query", _s("integer", minimum=1, maximum=500, default=50), "Items per page (≤ 500).")]
_LAYER_ID = _param("layer_id", "path", _s("string"), "A layer id: " + ", ".join(LAYER_IDS) + ".",
                   example="farmland")
_CHECK_ID = _param("check_id", "path", _s("integer", format="int64", minimum=1, maximum=2**63 - 1),
                   "The site check's number.", example=1)
_CODE = _param("code", "path", _s("string"), "The project code (项目代码).", example="2024-469099-59-01-000156")
_CONFLICT_ID = _param("conflict_id", "path", _s("string"), "A conflict id (rule and features hashed).",
                      example="C0E3F19FCF4AB")


def _op(op_id: str, summary: str, tag: str, responses: dict[str, Any], params: list[dict] | None = None,
        body: str | None = None, roles: list[str] | None = None, public: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag],
                          "parameters": [*(params or []), _LANG], "responses": responses}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if public:
        op["security"] = []
        op["x-roles"] = ["public"]
        return op
    roles = roles or READ_ROLES
    op["x-roles"] = roles
    if body:  # writes: no cookie (the API has no CSRF tokens)
        op["security"] = [{"bearerAuth": []}, {"basicAuth": []}]
    for code in ("401", "403"):
        responses.setdefault(code, _error(code))
    return op


def _paths() -> dict[str, Any]:
    report = {"200": {"description": "The report", "content": {}}, "404": _error("404")}
    reports = {}
    for fmt, mime, schema in (("json", "application/json", _ref("SiteReport")),
                              ("html", "text/html", _s("string")),
                              ("pdf", "application/pdf", _s("string", format="binary"))):
        responses = copy.deepcopy(report)
        responses["200"]["content"][mime] = {"schema": schema}
        reports[f"/site-checks/{{check_id}}/report.{fmt}"] = {"get": _op(
            f"site_check_report_{fmt}", f"A stored check's report as {fmt.upper()}"
            + (" (the bytes `multiplan check-site --format json` prints)" if fmt == "json" else
               " (the officers' report, in the request's language)"),
            "site checks", responses, [_CHECK_ID])}
    return {
        "/layers": {"get": _op("layers", "The twelve plan layers with their current versions", "plans",
                               {"200": _ok("LayerList")})},
        "/layers/{layer_id}": {"get": _op("layer", "One plan layer", "plans",
                                          {"200": _ok("Layer"), "404": _error("404")}, [_LAYER_ID])},
        "/layers/{layer_id}/versions": {"get": _op(
            "layer_versions", "The versions of a layer, oldest first", "plans",
            {"200": _ok("VersionList"), "404": _error("404")}, [_LAYER_ID])},
        "/layers/{layer_id}/versions/{number}": {"get": _op(
            "layer_version", "One version's record and load report", "plans",
            {"200": _ok("VersionDetail"), "404": _error("404")},
            [_LAYER_ID, _param("number", "path", _s("integer", minimum=1), "The version number.", example=1)])},
        "/conflicts": {"get": _op(
            "conflicts", "The conflict ledger, filtered and paged", "conflicts",
            {"200": _ok("ConflictPage"), "400": _error("400")},
            [_param("bbox", "query", _s("string", pattern=r"^[-+.0-9eE]+,[-+.0-9eE]+,[-+.0-9eE]+,[-+.0-9eE]+$"),
                    "minx,miny,maxx,maxy (lon/lat): conflicts whose patches in the latest run meet it.",
                    example="110.2,19.7,110.4,19.95"),
             _param("county", "query", _s("string"), "Admin code (xzqdm).", example="469099"),
             _param("rule", "query", _s("string"), "A rule id (400 if unknown)."),
             _param("status", "query", _s("string", enum=list(ledger.STATUSES)), "Ledger status."),
             _param("severity", "query", _s("string", enum=list(SEVERITY_ORDER)), "Rule severity."),
             _param("geometry", "query", _s("boolean", default=False), "Include each case's patch geometry."),
             *_PAGING])},
        "/conflicts/{conflict_id}": {"get": _op(
            "conflict", "A conflict with its history, patches and the approvals whose sites touch it", "conflicts",
            {"200": _ok("ConflictDetail"), "404": _error("404")}, [_CONFLICT_ID])},
        "/conflicts/{conflict_id}/transition": {"post": _op(
            "conflict_transition", "Move a conflict along the ledger's transitions (planner)", "conflicts",
            {"200": _ok("Conflict"), "400": _error("400"), "404": _error("404"), "409": _error("409")},
            [_CONFLICT_ID], body="ConflictTransition", roles=WRITE_ROLES["conflict_transition"])},
        "/site-checks": {"post": _op(
            "create_site_check", "Check a project site against every plan and store the check under its approval "
            "(officer)", "site checks",
            {"201": {**_ok("SiteCheckCreated", "The check, stored: its number and the full site report"),
                     "headers": {"Location": {"schema": _s("string"), "description": "the stored check"}}},
             "400": _error("400"), "404": _error("404")}, body="SiteCheckRequest",
            roles=WRITE_ROLES["create_site_check"])},
        "/site-checks/{check_id}": {"get": _op(
            "site_check", "A stored site check with its report", "site checks",
            {"200": _ok("SiteCheck"), "404": _error("404")}, [_CHECK_ID])},
        **reports,
        "/approvals": {
            "get": _op("approvals", "Approval records, filtered and paged", "approvals",
                       {"200": _ok("ApprovalPage"), "400": _error("400")},
                       [_param("status", "query", _s("string", enum=list(approvals.STATUSES)), "Approval status."),
                        _param("stage", "query", _s("string", enum=list(approvals.STAGES)), "Approval stage."),
                        *_PAGING]),
            "post": _op("create_approval", "Create an approval record (officer)", "approvals",
                        {"201": {**_ok("Approval", "Created"),
                                 "headers": {"Location": {"schema": _s("string"), "description": "the record"}}},
                         "400": _error("400"), "409": _error("409")}, body="ApprovalCreate",
                        roles=WRITE_ROLES["create_approval"])},
        "/approvals/{code}": {"get": _op(
            "approval", "An approval with its history, checks, conflicts and site", "approvals",
            {"200": _ok("Approval"), "404": _error("404")}, [_CODE])},
        "/approvals/{code}/transition": {"post": _op(
            "approval_transition", "Move an approval along submitted → under_review → approved / rejected / "
            "withdrawn (officer)", "approvals",
            {"200": _ok("Approval"), "400": _error("400"), "404": _error("404"), "409": _error("409")},
            [_CODE], body="ApprovalTransition", roles=WRITE_ROLES["approval_transition"])},
        "/statistics": {"get": _op(
            "statistics", "Area by unified class per plan, 两规差异 and conflicts by rule and severity, per county",
            "statistics", {"200": _ok("Statistics"), "404": _error("404")},
            [_param("county", "query", _s("string"), "Only this county (xzqdm); 404 if the one map has none.",
                    example="469099")])},
        "/openapi.json": {"get": _op("openapi", "This document", "meta", {"200": _ok("OpenApiDocument")},
                                     public=True)},
    }


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "multiplan API (多规合一)", "version": "1.0.0",
                 "description": "Plans, the conflict ledger, site checks (用地合规性审查), approvals and statistics "
                                "of the multi-plan integration system. JSON throughout; geometries are GeoJSON in "
                                "EPSG:4490 (lon/lat); areas are ellipsoidal, in m² and ha. Errors are "
                                "`{error, message, status}` with the message in the request's language (`?lang=en` "
                                "or `Accept-Language`; Chinese by default). Authenticate with `Authorization: Bearer "
                                "TOKEN` (tokens from `multiplan users token`) or HTTP Basic; a browser session "
                                "cookie is accepted for reads only. `x-roles` names the roles an operation needs "
                                "(admins may do everything)."},
        "servers": [{"url": "/api/v1"}],
        "tags": [{"name": name} for name in ("plans", "conflicts", "site checks", "approvals", "statistics", "meta")],
        "security": [{"bearerAuth": []}, {"basicAuth": []}, {"cookieAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API token"},
                "basicAuth": {"type": "http", "scheme": "basic", "description": "user name and password"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session",
                               "description": "the web application's session (GET only)"}},
            "schemas": _schemas()},
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of ``/api/v1`` (a fresh copy)."""
    return copy.deepcopy(_document())
