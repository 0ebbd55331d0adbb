"""Catalog expressions (regime rules, derived indicators), evaluated safely and exactly.

Expressions come from the catalog, which a deployment edits: they are parsed once per
regime version by `simpleeval` and restricted further to arithmetic (+ - * /),
comparisons and `and`/`or`/`not` over indicator codes and number literals. No attribute
access, no subscripts, no calls (the function whitelist is empty), never `eval`. Numbers
are `Decimal`, so `RECEIVED_TOTAL == RECEIVED_ONLINE + RECEIVED_DIRECT` holds exactly.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from simpleeval import InvalidExpression, SimpleEval

_OPERATORS: dict[type[ast.AST], Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_NODES = (
    ast.Expression,
    ast.Expr,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.UnaryOp,
    ast.BinOp,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.Compare,
    *_OPERATORS,
)

_PLAIN_RESULTS = frozenset({Decimal, bool})


class ExpressionError(ValueError):
    """An expression uses something other than arithmetic and comparisons."""


class _DecimalEval(SimpleEval):  # type: ignore[misc]
    """simpleeval limited to the nodes above, with number literals as exact decimals."""

    nodes: dict[type[ast.AST], Any]
    names: Mapping[str, Decimal]

    def __init__(self) -> None:
        super().__init__(operators=dict(_OPERATORS), functions={}, names={})
        allowed: dict[type[ast.AST], Any] = {
            node: handler for node, handler in self.nodes.items() if node in _NODES
        }
        self.nodes = allowed
        self.nodes[ast.Constant] = self._decimal_constant

    def _check_disallowed_items(self, item: Any) -> None:
        # Every value here is a Decimal or a bool (the nodes above build nothing else):
        # neither is a module or a function, so simpleeval's check of each node's result
        # is skipped for them (about a third of an evaluation's time).
        if type(item) not in _PLAIN_RESULTS:
            super()._check_disallowed_items(item)

    @staticmethod
    def _decimal_constant(node: ast.Constant) -> Decimal:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"only number literals are allowed, not {node.value!r}")
        return Decimal(str(node.value))


class Expression:
    """One parsed expression; `names` are the indicator codes it reads."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._tree = SimpleEval.parse(source)
        except SyntaxError as error:
            raise ExpressionError(f"cannot parse {source!r}: {error.msg}") from error
        except InvalidExpression as error:
            raise ExpressionError(f"cannot parse {source!r}: {error}") from error
        for node in ast.walk(self._tree):
            if not isinstance(node, _NODES):
                raise ExpressionError(
                    f"{type(node).__name__} is not allowed in {source!r}: only arithmetic, "
                    "comparisons and and/or/not over indicator codes"
                )
            if isinstance(node, ast.Constant) and (
                isinstance(node.value, bool) or not isinstance(node.value, int | float)
            ):
                raise ExpressionError(f"only number literals are allowed in {source!r}")
        self.names = frozenset(n.id for n in ast.walk(self._tree) if isinstance(n, ast.Name))
        self._evaluator = _DecimalEval()

    def evaluate(self, values: Mapping[str, Decimal]) -> Any:
        """Evaluate over `values` (every name must be present); decimal errors propagate."""
        # Evaluation is synchronous, so one evaluator per expression is never shared mid-way.
        self._evaluator.names = values
        try:
            return self._evaluator.eval(self.source, previously_parsed=self._tree)
        finally:
            self._evaluator.names = {}

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
