"""The conflict ledger: a conflict is a case that gets worked on, from detection to resolution.

A conflict is identified by its rule and the two features involved, so it keeps its status and history
across reruns while those features exist. Statuses move only along TRANSITIONS; every move, opinion and
rerun outcome is an append-only event.
"""

from __future__ import annotations

import hashlib
from typing import Any

from multiplan.errors import MultiplanError

STATUSES = ("open", "under_coordination", "resolved_adjust_a", "resolved_adjust_b", "accepted_exception",
            "false_positive")
CLOSED = ("resolved_adjust_a", "resolved_adjust_b", "accepted_exception", "false_positive")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("under_coordination", *CLOSED),
    "under_coordination": ("open", *CLOSED),
    **{closed: ("open",) for closed in CLOSED},  # a closed case can be reopened, with a reason
}


class LedgerError(MultiplanError, ValueError):
    """A status change the ledger does not allow."""


def conflict_id(rule: str, layer_a: str, feature_a: str, layer_b: str | None, feature_b: str | None) -> str:
    """A stable id: the same rule between the same two features is the same case in every run."""
    text = "\x1f".join(str(x) for x in (rule, layer_a, feature_a, layer_b or "", feature_b or ""))
    return "C" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12].upper()


def check_transition(current: str, target: str) -> None:
    if target not in STATUSES:
        raise LedgerError("conflict_bad_status", status=target, statuses=", ".join(STATUSES))
    if target not in TRANSITIONS[current]:
        raise LedgerError("conflict_bad_transition", current=current, target=target,
                          allowed=", ".join(TRANSITIONS[current]))


def outcome_of_disappearance(case: dict[str, Any], versions: dict[str, int]) -> tuple[str, str]:
    """When a rerun no longer finds an open case: which plan changed decides how it was resolved."""
    if case["layer_a"] in versions and versions[case["layer_a"]] != case["version_a"]:
        return "resolved_adjust_a", "plan_a_changed"
    if case["layer_b"] and case["layer_b"] in versions and versions[case["layer_b"]] != case["version_b"]:
        return "resolved_adjust_b", "plan_b_changed"
    return "false_positive", "rule_changed"
