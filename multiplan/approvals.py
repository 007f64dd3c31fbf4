"""Approval records: projects moving through the administrative stages, each linked to its site checks.

An approval carries the project code, name, applicant, stage, status, dates, site and officer. Its
status moves only along TRANSITIONS; every change (import, edit, transition, override, site check) is
an append-only event with who, when, from, to and why. Approving a project whose latest site check is
``prohibited`` (or could not be computed) needs an override with the officer's name and a reason.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely

from multiplan.errors import InputError, MultiplanError, NotFoundError
from multiplan.store.base import PlanStore, RecordTransaction, current_actor, now_utc

STAGES = ("选址意见书", "用地预审", "建设用地规划许可", "建设工程规划许可")
STAGE_NAMES_EN = {"选址意见书": "site selection opinion", "用地预审": "land pre-review",
                  "建设用地规划许可": "construction land planning permit",
                  "建设工程规划许可": "construction project planning permit"}
_STAGE_ALIASES = {"site_selection": "选址意见书", "land_pre_review": "用地预审", "land_use_permit": "建设用地规划许可",
                  "construction_permit": "建设工程规划许可", "建设用地规划许可证": "建设用地规划许可",
                  "建设工程规划许可证": "建设工程规划许可", "建设项目选址意见书": "选址意见书",
                  "建设项目用地预审": "用地预审"}
STATUSES = ("submitted", "under_review", "approved", "rejected", "withdrawn")
FINAL = ("approved", "rejected", "withdrawn")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submitted": ("under_review", "withdrawn"),
    "under_review": ("approved", "rejected", "withdrawn"),
    **{final: () for final in FINAL},
}
_STATUS_ALIASES = {"已提交": "submitted", "已受理": "submitted", "受理": "submitted", "审查中": "under_review",
                   "审核中": "under_review", "办理中": "under_review", "已批准": "approved", "批准": "approved",
                   "通过": "approved", "已办结": "approved", "不予批准": "rejected", "驳回": "rejected",
                   "退回": "rejected", "撤回": "withdrawn", "已撤回": "withdrawn"}
#: Verdicts of a site check that block approval unless overridden.
BLOCKING_VERDICTS = ("prohibited", "unknown")
#: 全国投资项目在线审批监管平台 project code, e.g. 2016-460000-xx-xx-xxxxxx (x: digits).
PROJECT_CODE = re.compile(r"^\d{4}-\d{6}-\d{2}-\d{2}-\d{6}$")

#: Accepted column names of an export, by field (Chinese as the approval system writes them, English).
COLUMN_NAMES = {
    "code": ("项目代码", "项目编码", "code", "project_code"), "name": ("项目名称", "name", "project_name"),
    "applicant": ("申请单位", "建设单位", "applicant"), "stage": ("审批阶段", "阶段", "stage"),
    "status": ("状态", "办理状态", "status"), "applied_on": ("申请日期", "applied_on"),
    "decided_on": ("办结日期", "decided_on"), "officer": ("经办人", "officer"),
    "site": ("用地范围", "红线", "site", "geometry", "wkt"), "notes": ("备注", "notes"),
}
EDITABLE = ("name", "applicant", "stage", "applied_on", "decided_on", "officer", "notes")


class ApprovalError(MultiplanError, ValueError):
    """An approval record or state change that the workflow does not allow."""


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"line", "code", "message"}

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged, "errors": self.errors}


def normalise_stage(value: str) -> str:
    text = (value or "").strip()
    stage = _STAGE_ALIASES.get(text, text)
    if stage not in STAGES:
        raise ApprovalError("approval_bad_stage", stage=value, stages="、".join(STAGES))
    return stage


def normalise_status(value: str) -> str:
    text = (value or "").strip()
    status = _STATUS_ALIASES.get(text, text.lower())
    if status not in STATUSES:
        raise ApprovalError("approval_bad_status", status=value, statuses=", ".join(STATUSES))
    return status


def check_code(code: str) -> str:
    code = (code or "").strip()
    if not PROJECT_CODE.match(code):
        raise ApprovalError("approval_bad_code", code=code)
    return code


def site_wkb(geometry: shapely.Geometry | None) -> bytes | None:
    return None if geometry is None else shapely.to_wkb(geometry, output_dimension=2)


def site_geometry(wkb: bytes | None) -> shapely.Geometry | None:
    return None if wkb is None else shapely.from_wkb(wkb)


# -- reading exports ----------------------------------------------------------------------------
def _decode(raw: bytes, path: Path) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError("approvals_bad_encoding", file=path.name)


def _field_of(header: str) -> str | None:
    text = header.strip().lstrip("\ufeff")
    return next((f for f, names in COLUMN_NAMES.items() if text in names or text.lower() in names), None)


def read_export(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows of an approval-system export (CSV or JSON) as (line or record number, {field: value})."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file_not_found", file=str(path))
    text = _decode(path.read_bytes(), path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError("approvals_bad_json", file=path.name, line=exc.lineno, detail=exc.msg) from exc
        records = data.get("records", data.get("approvals")) if isinstance(data, dict) else data
        if not isinstance(records, list):
            raise InputError("approvals_bad_json", file=path.name, line=1, detail="expected a list of records")
        rows = []
        for number, record in enumerate(records, start=1):
            fields = ({_field_of(k): v for k, v in record.items() if _field_of(k)} if isinstance(record, dict)
                      else {"_invalid": True})
            if isinstance(fields.get("site"), dict):
                fields["site"] = json.dumps(fields["site"])
            rows.append((number, fields))
        return rows
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise InputError("no_features", file=path.name)
    fields = [_field_of(h) for h in header]
    if "code" not in fields:
        raise InputError("approvals_no_code_column", file=path.name, columns=", ".join(header),
                         expected="、".join(COLUMN_NAMES["code"]))
    rows = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        rows.append((line, {f: v.strip() for f, v in zip(fields, values, strict=False) if f}))
    return rows


def _record_from_fields(fields: dict[str, Any], path_name: str) -> dict[str, Any]:
    if fields.get("_invalid"):
        raise ApprovalError("approvals_bad_record")
    from multiplan.sites import site_from_text

    record: dict[str, Any] = {"code": check_code(str(fields.get("code") or ""))}
    if fields.get("stage"):
        record["stage"] = normalise_stage(str(fields["stage"]))
    if fields.get("status"):
        record["status"] = normalise_status(str(fields["status"]))
    for name in ("name", "applicant", "applied_on", "decided_on", "officer", "notes"):
        if fields.get(name) not in (None, ""):
            record[name] = str(fields[name])
    for name in ("applied_on", "decided_on"):
        if name in record and not re.match(r"^\d{4}-\d{2}-\d{2}", record[name]):
            raise ApprovalError("approval_bad_date", field=name, value=record[name])
    if fields.get("site"):
        record["site"] = site_from_text(str(fields["site"])).geometry
    return record


# -- operations ---------------------------------------------------------------------------------
def _event(tx: RecordTransaction, code: str, kind: str, actor: str, before: str | None = None,
           after: str | None = None, reason: str | None = None, officer: str | None = None,
           check_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
    tx.insert("mp_approval_events", {
        "code": code, "at": now_utc(), "actor": actor, "kind": kind, "from_status": before, "to_status": after,
        "reason": reason, "officer": officer, "check_id": check_id,
        "detail": json.dumps(detail or {}, ensure_ascii=False, sort_keys=True)})


def _latest_check(tx: RecordTransaction, code: str) -> dict[str, Any] | None:
    checks = tx.select("mp_site_checks", {"approval_code": code})
    return max(checks, key=lambda c: c["id"]) if checks else None


def _check_approvable(tx: RecordTransaction, code: str, override: str | None, officer: str | None) -> dict | None:
    """Refuse approval over a blocking latest check unless an override names its reason and officer."""
    latest = _latest_check(tx, code)
    verdict = latest["verdict"] if latest else None
    if verdict in BLOCKING_VERDICTS and not (override and override.strip() and officer and officer.strip()):
        raise ApprovalError("approval_blocked", code=code, verdict=verdict, check=latest["id"])
    return latest if verdict in BLOCKING_VERDICTS else None


def _check_move(current: str, target: str, code: str) -> None:
    if target not in STATUSES:
        raise ApprovalError("approval_bad_status", status=target, statuses=", ".join(STATUSES))
    if target not in TRANSITIONS[current]:
        raise ApprovalError("approval_bad_transition", code=code, current=current, target=target,
                            allowed=", ".join(TRANSITIONS[current]) or "-")


def create_approval(store: PlanStore, record: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
    """Create one approval (status ``submitted`` unless given); refuse a code that exists."""
    actor = actor or current_actor()
    record = {**record, "code": check_code(record["code"]), "stage": normalise_stage(record.get("stage", ""))}
    record["status"] = normalise_status(record.get("status") or "submitted")
    with store._records() as tx:
        if tx.select("mp_approvals", {"code": record["code"]}, lock=True):
            raise ApprovalError("approval_exists", code=record["code"])
        _insert(tx, record, actor, "cli")
    return get_approval(store, record["code"])


def _insert(tx: RecordTransaction, record: dict[str, Any], actor: str, source: str) -> None:
    now = now_utc()
    tx.insert("mp_approvals", {
        **{k: record.get(k) for k in ("code", "stage", "status", *EDITABLE) if k != "stage"},
        "stage": record.get("stage"), "site_wkb": site_wkb(record.get("site")),
        "created_at": now, "updated_at": now, "source": source})
    _event(tx, record["code"], "created", actor, None, record["status"],
           detail={"source": source, **{k: record.get(k) for k in EDITABLE if record.get(k)}})


def import_approvals(store: PlanStore, path: str | Path, actor: str | None = None) -> ImportResult:
    """Import an export of the online approval system: new codes are created, known ones updated.

    Bad rows are reported by line and skipped; good rows are written together in one transaction.
    """
    actor = actor or current_actor()
    path = Path(path)
    result = ImportResult()
    prepared = []
    seen: dict[str, int] = {}
    for line, fields in read_export(path):
        try:
            record = _record_from_fields(fields, path.name)
            if record["code"] in seen:
                raise ApprovalError("approval_duplicate_row", code=record["code"], line=seen[record["code"]])
            seen[record["code"]] = line
            prepared.append((line, record))
        except MultiplanError as exc:
            result.errors.append({"line": line, "code": fields.get("code"), "message": exc.render()})
    with store._records() as tx:
        for line, record in prepared:
            found = tx.select("mp_approvals", {"code": record["code"]}, lock=True)
            try:
                if not found:
                    if "stage" not in record:
                        raise ApprovalError("approval_missing_field", field="stage")
                    record.setdefault("status", "submitted")
                    _insert(tx, record, actor, f"import:{path.name}")
                    result.created.append(record["code"])
                elif _update_from_import(tx, found[0], record, actor, path.name):
                    result.updated.append(record["code"])
                else:
                    result.unchanged.append(record["code"])
            except MultiplanError as exc:
                result.errors.append({"line": line, "code": record["code"], "message": exc.render()})
    return result


_ORDER = {"submitted": 0, "under_review": 1, "approved": 2, "rejected": 2, "withdrawn": 2}


def _update_from_import(tx: RecordTransaction, current: dict[str, Any], record: dict[str, Any], actor: str,
                        file_name: str) -> bool:
    """Apply an exported row to a known approval; True when anything changed."""
    code = current["code"]
    changes = {k: record[k] for k in EDITABLE if k in record and record[k] != current.get(k)}
    if "site" in record:
        wkb = site_wkb(record["site"])
        if wkb != current["site_wkb"]:
            changes["site_wkb"] = wkb
    status = record.get("status", current["status"])
    if status != current["status"]:
        # the online system may skip our intermediate states, but never goes back from a decision
        if current["status"] in FINAL or _ORDER[status] < _ORDER[current["status"]]:
            raise ApprovalError("approval_bad_transition", code=code, current=current["status"], target=status,
                                allowed=", ".join(TRANSITIONS[current["status"]]) or "-")
        if status == "approved":
            _check_approvable(tx, code, None, None)
    if not changes and status == current["status"]:
        return False
    tx.update("mp_approvals", code, {**changes, "status": status, "updated_at": now_utc()})
    if changes:
        _event(tx, code, "updated", actor, detail={"source": f"import:{file_name}",
                                                   "fields": sorted(changes)})
    if status != current["status"]:
        _event(tx, code, "transition", actor, current["status"], status, reason=f"import:{file_name}")
    return True


def transition_approval(store: PlanStore, code: str, target: str, reason: str, actor: str | None = None,
                        officer: str | None = None, override: str | None = None) -> dict[str, Any]:
    """Move an approval to ``target``, recording who and why; approval over a blocking check needs an override."""
    actor = actor or current_actor()
    if not (reason or "").strip():
        raise ApprovalError("approval_reason_required")
    target = normalise_status(target)
    with store._records() as tx:
        found = tx.select("mp_approvals", {"code": code}, lock=True)
        if not found:
            raise NotFoundError("approval_not_found", code=code)
        current = found[0]["status"]
        _check_move(current, target, code)
        overridden = _check_approvable(tx, code, override, officer) if target == "approved" else None
        values = {"status": target, "updated_at": now_utc()}
        if target in FINAL:
            values["decided_on"] = now_utc()[:10]
        if officer:
            values["officer"] = officer
        tx.update("mp_approvals", code, values)
        _event(tx, code, "override" if overridden else "transition", actor, current, target, reason=reason,
               officer=officer, check_id=overridden["id"] if overridden else None,
               detail={"override": override, "verdict": overridden["verdict"]} if overridden else None)
    return get_approval(store, code)


def record_check(store: PlanStore, report: dict[str, Any], site: shapely.Geometry, approval_code: str | None = None,
                 actor: str | None = None, report_json: str | None = None) -> int:
    """Store a site check with its links to the conflicts it touches (and to its approval); return its id.
    ``report_json`` is the report's canonical JSON when the caller has it already."""
    actor = actor or current_actor()
    with store._records() as tx:
        approval = None
        if approval_code:
            found = tx.select("mp_approvals", {"code": approval_code}, lock=True)
            if not found:
                raise NotFoundError("approval_not_found", code=approval_code)
            approval = found[0]
        check_id = tx.insert("mp_site_checks", {
            "approval_code": approval_code, "checked_at": now_utc(), "actor": actor, "verdict": report["verdict"],
            "content_sha256": report["content_sha256"], "site_area_m2": report["site"]["area_m2"],
            "as_of": report.get("as_of"), "site_wkb": site_wkb(site),
            "report_json": report_json or json.dumps(report, ensure_ascii=False, sort_keys=True)})
        for conflict in sorted({c["conflict_id"] for c in report.get("conflicts", [])}):
            tx.insert("mp_check_conflicts", {"check_id": check_id, "conflict_id": conflict})
        if approval is not None:
            if approval["site_wkb"] is None:
                tx.update("mp_approvals", approval_code, {"site_wkb": site_wkb(site), "updated_at": now_utc()})
            _event(tx, approval_code, "check", actor, check_id=check_id,
                   detail={"verdict": report["verdict"], "content_sha256": report["content_sha256"]})
    assert check_id is not None
    return check_id


# -- queries ------------------------------------------------------------------------------------
def list_approvals(store: PlanStore, status: str | None = None, stage: str | None = None) -> list[dict[str, Any]]:
    where = {}
    if status:
        where["status"] = normalise_status(status)
    if stage:
        where["stage"] = normalise_stage(stage)
    rows = store.select_records("mp_approvals", where)
    checks = store.select_records("mp_site_checks")
    latest: dict[str, dict[str, Any]] = {}
    for check in checks:
        if check["approval_code"]:
            latest[check["approval_code"]] = check
    return [{**_public(r), "latest_verdict": latest.get(r["code"], {}).get("verdict")}
            for r in sorted(rows, key=lambda r: r["code"])]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "site_wkb"}
    out["site"] = site_geometry(row.get("site_wkb"))
    return out


def find_approval(store: PlanStore, code: str) -> dict[str, Any]:
    """The approval record alone (no events, checks or links); NotFoundError when there is none."""
    found = store.select_records("mp_approvals", {"code": code})
    if not found:
        raise NotFoundError("approval_not_found", code=code)
    return _public(found[0])


def get_approval(store: PlanStore, code: str) -> dict[str, Any]:
    """An approval with its events, its checks (newest last) and the conflicts its latest check touches."""
    with store._records(write=False) as tx:
        found = tx.select("mp_approvals", {"code": code})
        if not found:
            raise NotFoundError("approval_not_found", code=code)
        events = tx.select("mp_approval_events", {"code": code})
        checks = tx.select("mp_site_checks", {"approval_code": code})
        links = tx.select("mp_check_conflicts", {"check_id": checks[-1]["id"]}) if checks else []
    return {**_public(found[0]),
            "events": [{**e, "detail": json.loads(e["detail"] or "{}")} for e in events],
            "checks": [{k: v for k, v in c.items() if k not in ("site_wkb", "report_json")} for c in checks],
            "conflicts": sorted(link["conflict_id"] for link in links)}


def approvals_touching(store: PlanStore, conflict_id: str) -> list[dict[str, Any]]:
    """The approvals whose site checks touched conflict ``conflict_id``, with the check that did."""
    with store._records(write=False) as tx:
        out = []
        for link in tx.select("mp_check_conflicts", {"conflict_id": conflict_id}):
            check = tx.select("mp_site_checks", {"id": link["check_id"]})[0]
            if check["approval_code"]:
                out.append({"code": check["approval_code"], "check_id": check["id"], "verdict": check["verdict"],
                            "checked_at": check["checked_at"]})
    return out


def get_check(store: PlanStore, check_id: int) -> dict[str, Any]:
    found = store.select_records("mp_site_checks", {"id": int(check_id)})
    if not found:
        raise NotFoundError("check_not_found", check=check_id)
    row = found[0]
    return {**{k: v for k, v in row.items() if k not in ("site_wkb", "report_json")},
            "site": site_geometry(row["site_wkb"]), "report": json.loads(row["report_json"])}
