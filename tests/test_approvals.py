"""Approval records on both stores: imports that update rather than duplicate, bad rows by line, the state
machine, the override rule, the append-only trail, and links between checks, approvals and conflicts."""

from __future__ import annotations

import csv
import json
import sqlite3

import psycopg
import pytest
import shapely

from multiplan.approvals import (
    ApprovalError,
    approvals_touching,
    create_approval,
    get_approval,
    get_check,
    import_approvals,
    list_approvals,
    record_check,
    transition_approval,
)
from multiplan.cli.demo import SAMPLE_DIR
from multiplan.errors import NotFoundError

SAMPLE = SAMPLE_DIR / "approvals.csv"
SITE = shapely.box(110.30, 19.80, 110.301, 19.801)


def _rows():
    with open(SAMPLE, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def _write(path, rows, encoding="utf-8-sig"):
    with open(path, "w", encoding=encoding, newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def _report(verdict, conflicts=()):
    """What check_site returns, as far as storing a check needs it."""
    return {"verdict": verdict, "content_sha256": "0" * 64, "site": {"area_m2": 123.0},
            "as_of": None, "conflicts": [{"conflict_id": c} for c in conflicts]}


def test_importing_the_sample_twice_creates_then_leaves_unchanged(store):
    first = import_approvals(store, SAMPLE)
    assert len(first.created) == 8 and first.errors == []
    again = import_approvals(store, SAMPLE)
    assert again.created == [] and len(again.unchanged) == 8 and again.updated == []
    listed = list_approvals(store)
    assert len(listed) == 8
    record = get_approval(store, "2024-469099-61-01-000203")
    assert record["name"] == "石岭火山森林温泉度假酒店项目" and record["stage"] == "选址意见书"
    assert record["status"] == "rejected" and record["site"].geom_type == "MultiPolygon"
    assert [e["kind"] for e in record["events"]] == ["created"]


def test_a_changed_row_updates_the_record_and_its_trail(store, tmp_path):
    import_approvals(store, SAMPLE)
    rows = _rows()
    code = rows[6][0]  # submitted in the sample
    assert rows[6][4] == "submitted"
    rows[6][4] = "under_review"
    rows[6][8] = "已补充地质灾害评估"
    result = import_approvals(store, _write(tmp_path / "again.csv", rows))
    assert result.updated == [code] and len(result.unchanged) == 7
    record = get_approval(store, code)
    assert record["status"] == "under_review" and record["notes"] == "已补充地质灾害评估"
    kinds = [(e["kind"], e["from_status"], e["to_status"]) for e in record["events"]]
    assert kinds == [("created", None, "submitted"), ("updated", None, None),
                     ("transition", "submitted", "under_review")]
    assert record["events"][1]["detail"]["fields"] == ["notes"]


def test_bad_rows_are_reported_by_line_and_good_rows_still_import(store, tmp_path):
    rows = _rows()
    rows[2][0] = "2024-46909-70-03-118"              # line 3: malformed project code
    rows[3][3] = "竣工验收"                           # line 4: not a stage
    rows[4][7] = "POLYGON ((110.3 19.8, 110.31"       # line 5: broken WKT
    rows.append(list(rows[1]))                        # line 10: the first project again
    result = import_approvals(store, _write(tmp_path / "bad.csv", rows))
    assert sorted(e["line"] for e in result.errors) == [3, 4, 5, 10]
    messages = {e["line"]: e["message"] for e in result.errors}
    assert "2024-46909-70-03-118" in messages[3] and "竣工验收" in messages[4] and "第 2 行" in messages[10]
    assert len(result.created) == 5  # the first instance of the repeated project is imported
    assert len(list_approvals(store)) == 5


def test_gbk_exports_and_json_exports_import_too(store, tmp_path):
    rows = _rows()[:3]
    gbk = import_approvals(store, _write(tmp_path / "gbk.csv", rows, encoding="gbk"))
    assert len(gbk.created) == 2 and gbk.errors == []
    records = [{"project_code": "2025-460000-48-01-000001", "name": "海口绕城高速扩建", "applicant": "省交通厅",
                "stage": "land_pre_review", "status": "已受理",
                "site": {"type": "Polygon", "coordinates": [[[110.30, 19.80], [110.31, 19.80], [110.31, 19.81],
                                                              [110.30, 19.80]]]}},
               {"project_code": "bad", "stage": "用地预审"}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"records": records}, ensure_ascii=False), "utf-8")
    result = import_approvals(store, path)
    assert result.created == ["2025-460000-48-01-000001"]
    assert [e["line"] for e in result.errors] == [2]
    record = get_approval(store, "2025-460000-48-01-000001")
    assert record["stage"] == "用地预审" and record["status"] == "submitted" and record["site"] is not None


def test_the_state_machine_allows_only_forward_moves_with_a_reason(store):
    create_approval(store, {"code": "2025-460000-48-01-000002", "name": "n", "applicant": "a", "stage": "选址意见书"})
    code = "2025-460000-48-01-000002"
    with pytest.raises(ApprovalError) as err:
        transition_approval(store, code, "approved", "looks fine")
    assert "submitted" in str(err.value) and "under_review" in str(err.value)
    with pytest.raises(ApprovalError):
        transition_approval(store, code, "under_review", "  ")
    transition_approval(store, code, "under_review", "材料齐全", actor="li")
    record = transition_approval(store, code, "approved", "符合规划", actor="li", officer="王海涛")
    assert record["status"] == "approved" and record["decided_on"] and record["officer"] == "王海涛"
    with pytest.raises(ApprovalError):
        transition_approval(store, code, "withdrawn", "too late")
    trail = [(e["kind"], e["from_status"], e["to_status"], e["actor"], e["reason"]) for e in record["events"]]
    assert trail[1:] == [("transition", "submitted", "under_review", "li", "材料齐全"),
                         ("transition", "under_review", "approved", "li", "符合规划")]
    with pytest.raises(NotFoundError):
        transition_approval(store, "2025-460000-48-01-999999", "under_review", "x")
    with pytest.raises(ApprovalError):
        create_approval(store, {"code": code, "name": "n", "applicant": "a", "stage": "选址意见书"})


@pytest.mark.parametrize("verdict", ["prohibited", "unknown"])
def test_approval_over_a_blocking_check_needs_an_override_with_officer_and_reason(store, verdict):
    code = "2025-460000-48-01-000003"
    create_approval(store, {"code": code, "name": "n", "applicant": "a", "stage": "用地预审"})
    transition_approval(store, code, "under_review", "受理")
    check_id = record_check(store, _report(verdict), SITE, code)
    with pytest.raises(ApprovalError) as err:
        transition_approval(store, code, "approved", "领导同意")
    assert str(check_id) in str(err.value)
    with pytest.raises(ApprovalError):  # a reason without an officer's name is not an override
        transition_approval(store, code, "approved", "领导同意", override="省政府专题会议纪要")
    record = transition_approval(store, code, "approved", "领导同意", officer="陈晓燕", override="省政府专题会议纪要第12号")
    last = record["events"][-1]
    assert (last["kind"], last["officer"], last["check_id"]) == ("override", "陈晓燕", check_id)
    assert last["detail"] == {"override": "省政府专题会议纪要第12号", "verdict": verdict}


def test_a_later_compliant_check_lifts_the_block(store):
    code = "2025-460000-48-01-000004"
    create_approval(store, {"code": code, "name": "n", "applicant": "a", "stage": "用地预审"})
    transition_approval(store, code, "under_review", "受理")
    record_check(store, _report("prohibited"), SITE, code)
    record_check(store, _report("compliant"), SITE, code)
    assert transition_approval(store, code, "approved", "调整红线后符合")["status"] == "approved"


def test_checks_link_approvals_and_conflicts_both_ways(store):
    code = "2025-460000-48-01-000005"
    create_approval(store, {"code": code, "name": "n", "applicant": "a", "stage": "用地预审"})
    first = record_check(store, _report("prohibited", ["CAAA", "CBBB"]), SITE, code)
    loose = record_check(store, _report("compliant", ["CAAA"]), SITE)  # not tied to any approval
    record = get_approval(store, code)
    assert record["conflicts"] == ["CAAA", "CBBB"]
    assert [c["id"] for c in record["checks"]] == [first]
    assert record["site"].equals(SITE)  # the approval had no site: the checked one is kept
    assert [(a["code"], a["check_id"]) for a in approvals_touching(store, "CAAA")] == [(code, first)]
    assert approvals_touching(store, "CZZZ") == []
    assert get_check(store, loose)["approval_code"] is None
    assert record["events"][-1]["kind"] == "check" and record["events"][-1]["check_id"] == first
    with pytest.raises(NotFoundError):
        record_check(store, _report("compliant"), SITE, "2025-460000-48-01-999999")


def test_the_trail_and_the_checks_are_append_only(store_url, store):
    code = "2025-460000-48-01-000006"
    create_approval(store, {"code": code, "name": "n", "applicant": "a", "stage": "用地预审"})
    record_check(store, _report("compliant", ["CAAA"]), SITE, code)
    statements = ["UPDATE mp_approval_events SET reason = 'x'", "DELETE FROM mp_approval_events",
                  "UPDATE mp_site_checks SET verdict = 'compliant'", "DELETE FROM mp_check_conflicts"]
    for sql in statements:
        if store_url.endswith(".gpkg"):
            with pytest.raises(sqlite3.DatabaseError), sqlite3.connect(store_url) as con:
                con.execute(sql)
        else:
            with pytest.raises(psycopg.Error), psycopg.connect(store_url) as conn:
                conn.execute(sql)
    assert len(get_approval(store, code)["events"]) == 2
