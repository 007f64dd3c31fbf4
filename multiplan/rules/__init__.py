"""Conflict rules as data: YAML -> schema check -> references checked against the layer specs."""

from __future__ import annotations

from multiplan.rules.kinds import RULE_KINDS, RuleKind, register_kind
from multiplan.rules.spec import GROUPS, ClassFilter, RuleSpec, load_rules

__all__ = ["GROUPS", "RULE_KINDS", "ClassFilter", "RuleKind", "RuleSpec", "load_rules", "register_kind"]
