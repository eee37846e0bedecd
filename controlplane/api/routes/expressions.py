"""``/api/v1/expressions/validate``: live validation of sampling rules."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.schemas import ExpressionValidate, ExpressionValidation, RuleErrorPublic
from dataplane.expr import validate_rule

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/expressions", tags=["expressions"])


@router.post("/validate", response_model=ExpressionValidation)
async def validate(body: ExpressionValidate) -> ExpressionValidation:
    """Check a rule with the nodes' compiler: errors with positions, fields used, tail or not."""
    result = validate_rule(body.expression)
    return ExpressionValidation(
        valid=result.valid,
        errors=[
            RuleErrorPublic(message=e.message, start=e.start, end=e.end) for e in result.errors
        ],
        fields=list(result.fields),
        tail=result.tail,
    )
