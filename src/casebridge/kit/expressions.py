"""A small, safe expression language (a subset of JSON-logic) and ``{{ path }}`` templates.

Nothing here executes code: an expression is JSON, interpreted by a fixed table of operators over
plain data (dicts, lists, strings, numbers). Sizes are bounded so a definition cannot exhaust the
server. ``validate`` checks an expression when a workflow or webhook is saved and reports each
problem with its path (``trigger.condition.and.1.==``), so bad definitions are refused up front.

Expressions::

    {"==": [{"var": "event.type"}, "matter.status_changed"]}
    {"and": [{">": [{"var": "entity.fee_estimate.amount"}, 1000]}, {"in": ["Probate", {"var": "entity.practice_area"}]}]}

Operators: ``var`` (dotted path, optional default; a path that does not exist is null, so a condition
over a missing field is false), ``missing``, ``==``, ``!=``, ``<``, ``<=``, ``>``,
``>=`` (``<``/``<=`` also take three arguments: between), ``and``, ``or``, ``!``, ``!!``, ``if``,
``in`` (list membership or substring), ``cat``, ``+``, ``-``, ``*``, ``/``, ``%``, ``min``, ``max``,
``starts_with``, ``changed`` (``{"changed": "status"}``: the event changed that field).

Templates are strings with ``{{ path }}`` placeholders over the same data. A string that is exactly one
placeholder yields the value itself (a number stays a number); otherwise values are formatted into the
text. A path that does not exist is an error (a workflow step fails visibly, it never sends "None").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any

MAX_DEPTH = 32
MAX_NODES = 2000
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_RAISE = object()
_ABSENT = object()


class ExpressionError(ValueError):
    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def lookup(data: Any, path: str, default: Any = _RAISE) -> Any:
    current = data
    for part in path.split(".") if path else []:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            if default is _RAISE:
                raise ExpressionError(f"'{path}' does not exist in the data")
            return default
    return current


def _num(value: Any) -> Decimal:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float | str):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ExpressionError(f"{value!r} is not a number") from None
    raise ExpressionError(f"{value!r} is not a number")


def _plain(value: Any) -> Any:
    """Compare money-like strings and numbers as numbers; everything else as is."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def _eq(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if (isinstance(a, Decimal) and isinstance(b, str)) or (isinstance(b, Decimal) and isinstance(a, str)):
        try:
            return _num(a) == _num(b)
        except ExpressionError:
            return False
    return bool(a == b)


def _truthy(value: Any) -> bool:
    if isinstance(value, list | dict | str):
        return len(value) > 0
    return bool(value)


def _compare(op: str, args: list[Any]) -> bool:
    nums = [_num(a) for a in args]
    pairs = list(pairwise(nums))
    if op == "<":
        return all(x < y for x, y in pairs)
    if op == "<=":
        return all(x <= y for x, y in pairs)
    if op == ">":
        return nums[0] > nums[1]
    return nums[0] >= nums[1]


_ARITY = {
    "var": (1, 2),
    "missing": (0, 100),
    "==": (2, 2),
    "!=": (2, 2),
    "<": (2, 3),
    "<=": (2, 3),
    ">": (2, 2),
    ">=": (2, 2),
    "and": (1, 100),
    "or": (1, 100),
    "!": (1, 1),
    "!!": (1, 1),
    "if": (2, 99),
    "in": (2, 2),
    "cat": (1, 100),
    "+": (1, 100),
    "-": (1, 2),
    "*": (2, 100),
    "/": (2, 2),
    "%": (2, 2),
    "min": (1, 100),
    "max": (1, 100),
    "starts_with": (2, 2),
    "changed": (1, 1),
}
OPERATORS = frozenset(_ARITY)


def _args(node: dict[str, Any]) -> tuple[str, list[Any]]:
    (op, raw), *_ = node.items()
    return op, raw if isinstance(raw, list) else [raw]


def validate(expr: Any, path: str = "") -> list[ExpressionError]:
    """Every problem in an expression, each with its path; an empty list means it is valid."""
    errors: list[ExpressionError] = []
    count = [0]

    def walk(node: Any, where: str, depth: int) -> None:
        count[0] += 1
        if count[0] > MAX_NODES:
            errors.append(ExpressionError(f"the expression has more than {MAX_NODES} parts", path))
            return
        if depth > MAX_DEPTH:
            errors.append(ExpressionError(f"the expression nests deeper than {MAX_DEPTH}", where))
            return
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}.{i}", depth + 1)
            return
        if not isinstance(node, dict):
            if node is not None and not isinstance(node, str | int | float | bool):
                errors.append(ExpressionError(f"unsupported value {node!r}", where))
            return
        if len(node) != 1:
            errors.append(ExpressionError("an operation is an object with exactly one operator key", where))
            return
        op, args = _args(node)
        here = f"{where}.{op}" if where else op
        if op not in OPERATORS:
            errors.append(
                ExpressionError(f"unknown operator {op!r}; use one of: {', '.join(sorted(OPERATORS))}", here)
            )
            return
        lo, hi = _ARITY[op]
        if not lo <= len(args) <= hi:
            errors.append(ExpressionError(f"{op!r} takes {lo}..{hi} arguments, got {len(args)}", here))
            return
        if op in ("var", "changed"):
            if not isinstance(args[0], str) or (args[0] and not _PATH.match(args[0])):
                errors.append(ExpressionError(f"{op!r} needs a dotted path such as 'entity.status'", here))
            return
        for i, arg in enumerate(args):
            walk(arg, f"{here}.{i}", depth + 1)

    walk(expr, path, 0)
    return errors


def evaluate(expr: Any, data: dict[str, Any]) -> Any:
    """The value of an expression over ``data``. Raises ExpressionError on a type error at run time."""
    problems = validate(expr)
    if problems:
        raise problems[0]
    return _eval(expr, data)


def _eval(node: Any, data: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_eval(n, data) for n in node]
    if not isinstance(node, dict):
        return node
    op, raw_args = _args(node)
    if op == "var":
        default = raw_args[1] if len(raw_args) > 1 else None
        return lookup(data, raw_args[0], default) if raw_args[0] else data
    if op == "changed":
        changes = lookup(data, "event.changes", {})
        return isinstance(changes, dict) and raw_args[0] in changes
    if op == "and":
        result: Any = True
        for a in raw_args:
            result = _eval(a, data)
            if not _truthy(result):
                return result
        return result
    if op == "or":
        result = False
        for a in raw_args:
            result = _eval(a, data)
            if _truthy(result):
                return result
        return result
    if op == "if":
        for i in range(0, len(raw_args) - 1, 2):
            if _truthy(_eval(raw_args[i], data)):
                return _eval(raw_args[i + 1], data)
        return _eval(raw_args[-1], data) if len(raw_args) % 2 else None
    args = [_eval(a, data) for a in raw_args]
    if op == "missing":
        return [a for a in args if lookup(data, str(a), _ABSENT) is _ABSENT]
    if op == "==":
        return _eq(args[0], args[1])
    if op == "!=":
        return not _eq(args[0], args[1])
    if op in ("<", "<=", ">", ">="):
        return _compare(op, args)
    if op == "!":
        return not _truthy(args[0])
    if op == "!!":
        return _truthy(args[0])
    if op == "in":
        container = args[1]
        if isinstance(container, str):
            return str(args[0]) in container
        if isinstance(container, list):
            return any(_eq(args[0], c) for c in container)
        return False
    if op == "cat":
        return "".join("" if a is None else str(a) for a in args)
    if op == "starts_with":
        return isinstance(args[0], str) and args[0].startswith(str(args[1]))
    nums = [_num(a) for a in args]
    if op == "+":
        return sum(nums, Decimal(0))
    if op == "-":
        return -nums[0] if len(nums) == 1 else nums[0] - nums[1]
    if op == "*":
        out = Decimal(1)
        for n in nums:
            out *= n
        return out
    if op in ("/", "%"):
        if nums[1] == 0:
            raise ExpressionError(f"division by zero in {op!r}")
        return nums[0] / nums[1] if op == "/" else nums[0] % nums[1]
    if op == "min":
        return min(nums)
    return max(nums)  # "max"


def truthy(expr: Any, data: dict[str, Any]) -> bool:
    return _truthy(evaluate(expr, data))


# --- templates -----------------------------------------------------------------------------------


def validate_template(value: Any, path: str = "") -> list[ExpressionError]:
    errors: list[ExpressionError] = []
    if isinstance(value, str):
        for m in _PLACEHOLDER.finditer(value):
            if not _PATH.match(m.group(1)):
                errors.append(
                    ExpressionError(
                        f"'{{{{ {m.group(1)} }}}}' is not a dotted path such as entity.title", path
                    )
                )
        if value.count("{{") != len(_PLACEHOLDER.findall(value)):
            errors.append(ExpressionError("unbalanced '{{' in template", path))
    elif isinstance(value, dict):
        for k, v in value.items():
            errors += validate_template(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            errors += validate_template(v, f"{path}.{i}" if path else str(i))
    return errors


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(value: Any, data: dict[str, Any]) -> Any:
    """Fill every ``{{ path }}`` in a string, or in the strings of a dict or list, from ``data``."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return lookup(data, whole.group(1))
        return _PLACEHOLDER.sub(lambda m: _format(lookup(data, m.group(1))), value)
    if isinstance(value, dict):
        return {k: render(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, data) for v in value]
    return value
