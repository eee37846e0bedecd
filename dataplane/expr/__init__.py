"""The sampling expression language (Kong ATC compatible), see docs/expressions.md.

One implementation for both planes: the control plane validates rules with ``validate_rule``
and ``compile_rule``, the data plane evaluates ``SamplingRule.matches`` on the hot path.
Phases: ``lexer`` -> ``parser`` (``ast``) -> ``checker`` (against ``schema``) -> ``compiler``;
``printer`` turns a tree back into text.
"""

from __future__ import annotations

from dataplane.expr.errors import RuleError, RuleErrorDetail
from dataplane.expr.facts import RequestFacts
from dataplane.expr.rule import SamplingRule, ValidationResult, compile_rule, validate_rule
from dataplane.expr.schema import FieldInfo, FieldType, Phase, known_fields

__all__ = [
    "FieldInfo",
    "FieldType",
    "Phase",
    "RequestFacts",
    "RuleError",
    "RuleErrorDetail",
    "SamplingRule",
    "ValidationResult",
    "compile_rule",
    "known_fields",
    "validate_rule",
]
