"""Catalog expressions (regime rules, derived indicators), evaluated safely and exactly.

Expressions come from the catalog, which a deployment edits: each is checked once per
regime version against a whitelist of syntax, arithmetic (+ - * /), comparisons and
`and`/`or`/`not` over indicator codes and number literals (no attribute access, no
subscripts, no calls), then compiled by `evalidate`, which checks the tree against the
same whitelist again before compiling it, so that a report's rules run as Python's own
bytecode rather than through an interpreter written in Python (a fifth of judging a
report went there). Numbers are `Decimal`: each number literal is replaced by a name
bound to its exact value, so `RECEIVED_TOTAL == RECEIVED_ONLINE + RECEIVED_DIRECT` holds
exactly, and no binary float is ever part of a computation.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from evalidate import EvalModel, ExecutionException, Expr, ValidationException

_OPERATORS = (
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.USub,
    ast.UAdd,
    ast.Not,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
)
_NODES = (
    ast.Expression,
    ast.Name,
    ast.Load,
    ast.UnaryOp,
    ast.BinOp,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.Compare,
    *_OPERATORS,
)
# What evalidate lets through once the literals are names: no call, no attribute.
_MODEL = EvalModel(nodes=[node.__name__ for node in _NODES])
# Names given to the literals: indicator codes are upper case, so these never clash.
_LITERAL = "_n{}"


class ExpressionError(ValueError):
    """An expression uses something other than arithmetic and comparisons."""


class _ExactLiterals(ast.NodeTransformer):
    """Each number literal becomes a name bound to its exact decimal value."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.values: dict[str, Decimal] = {}

    def visit_Constant(self, node: ast.Constant) -> ast.Name:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"only number literals are allowed in {self.source!r}")
        name = _LITERAL.format(len(self.values))
        self.values[name] = Decimal(str(node.value))
        return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), node)


class Expression:
    """One expression, checked and compiled; `names` are the indicator codes it reads."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as error:
            raise ExpressionError(f"cannot parse {source!r}: {error.msg}") from error
        for node in ast.walk(tree):
            if not isinstance(node, (*_NODES, ast.Constant)):
                raise ExpressionError(
                    f"{type(node).__name__} is not allowed in {source!r}: only arithmetic, "
                    "comparisons and and/or/not over indicator codes"
                )
        self.names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
        literals = _ExactLiterals(source)
        exact = ast.fix_missing_locations(literals.visit(tree))
        # The literals are the evaluation's globals; no builtins, so a name that is no
        # indicator of the values raises NameError rather than finding a Python function.
        self._literals: dict[str, Any] = {"__builtins__": {}, **literals.values}
        try:
            self._compiled = Expr(ast.unparse(exact), model=_MODEL)
        except ValidationException as error:  # the whitelist above is evalidate's too
            raise ExpressionError(f"{error} in {source!r}") from error

    def evaluate(self, values: Mapping[str, Decimal]) -> Any:
        """Evaluate over `values` (every name must be present); decimal errors propagate."""
        try:
            return self._compiled.eval(self._literals, values)
        except ExecutionException as error:
            raise error.exc from None

    def holds(self, values: Mapping[str, Decimal]) -> bool:
        return bool(self.evaluate(values))

    def compute(self, values: Mapping[str, Decimal]) -> Decimal | None:
        """A derived value, or None when it has none (a zero denominator, a missing input)."""
        if not self.names <= values.keys():
            return None
        try:
            result = self.evaluate(values)
        except (ZeroDivisionError, InvalidOperation):
            return None
        return result if isinstance(result, Decimal) else Decimal(result)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
