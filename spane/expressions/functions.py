"""Functions callable from SPANE expressions, on top of CEL's own.

CEL (the Rust core behind ``common-expression-language``) ships the macros ``has``,
``all``, ``exists``, ``exists_one``, ``map`` and ``filter``, the conversions ``int``,
``uint``, ``double``, ``string``, ``bytes``, ``timestamp``, ``duration``, ``dyn`` and
``type``, ``size`` and the string predicates ``contains``, ``startsWith``, ``endsWith``
and ``matches``. Every expression can also call:

* the cel-go compatible extension library of the same package (``cel.stdlib``):
  ``split``, ``join``, ``replace``, ``lowerAscii``, ``upperAscii``, ``trim``,
  ``substring``, ``indexOf``, ``charAt``, ``reverse``, ``sort``, ``distinct``, ``slice``,
  ``lists.range``, ``math.greatest``, ``math.round``, ``base64.encode``, ``sets.contains``,
  list/map ``contains``, ...;
* the SPANE data helpers below, which win where a name exists in both
  (``sum``, ``min``, ``max``, ``flatten``).

Every function can be called as a method too: ``items.chunk(10)`` is ``chunk(items, 10)``.

There is no ``default(value, fallback)``: CEL evaluates a function's arguments first, so
a missing key fails before any function could catch it. Test for presence instead::

    has(input.coupon) ? input.coupon : "none"          # a field of a map
    "coupon" in input ? input["coupon"] : "none"      # the same, any key
    has(nodes.charge) && nodes.charge.status == "succeeded"

CEL maps have no order: a map literal, a map from the context or a function's result
comes back in an order that changes from one evaluation to the next, and so does a
macro over a map's keys (``m.map(k, ...)``). ``keys(m)`` and ``values(m)`` are sorted by
key; iterate those when order matters. (Evaluation results are sorted by key too.)

Functions receive and return plain Python values (``dict``, ``list``, ``str``, ``int``,
``float``, ``bool``, ``None``); CEL ints and uints arrive as ``int``, doubles as ``float``.
They raise ``ValueError``/``TypeError`` with a message that starts with their name; the
expression layer turns that into an ``ExpressionEvaluationError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from cel import stdlib as _cel_stdlib

__all__ = [
    "FUNCTIONS",
    "NAMESPACES",
    "SPANE_FUNCTIONS",
    "chunk",
    "flatten",
    "functions_for",
    "group_by",
    "keys",
    "max_",
    "merge",
    "min_",
    "pick",
    "sum_",
    "type_name",
    "unique",
    "values",
]

_MAP_KEY_TYPES = (str, int, bool)


def _require_map(name: str, value: Any, what: str = "argument") -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{name}: {what} must be a map, got {type_name(value)}")
    return value


def _require_list(name: str, value: Any, what: str = "argument") -> list[Any]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"{name}: {what} must be a list, got {type_name(value)}")
    return list(value)


def type_name(value: Any) -> str:
    """The CEL name of a Python value's type, for error messages."""
    names: dict[type, str] = {
        bool: "bool",
        int: "int",
        float: "double",
        str: "string",
        bytes: "bytes",
        list: "list",
        tuple: "list",
        dict: "map",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _items_of(name: str, args: tuple[Any, ...]) -> list[Any]:
    """``f(list)`` or ``f(a, b, ...)``: the values to aggregate."""
    if len(args) == 1 and isinstance(args[0], list | tuple):
        return list(args[0])
    return list(args)


def _numbers(name: str, items: Iterable[Any]) -> list[int | float]:
    result: list[int | float] = []
    for index, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise TypeError(f"{name}: item {index} is a {type_name(item)}, not a number")
        result.append(item)
    return result


def merge(first: Any, *others: Any) -> dict[Any, Any]:
    """Shallow merge of maps; later maps win: ``merge({"a": 1}, {"a": 2, "b": 3})``."""
    result = dict(_require_map("merge", first, "argument 1"))
    for position, other in enumerate(others, start=2):
        result.update(_require_map("merge", other, f"argument {position}"))
    return result


def sum_(*args: Any) -> int | float:
    """Sum of numbers (a list, or several arguments); ``0`` for an empty list.

    Unlike CEL's ``+``, ints and doubles may be mixed (JSON does not tell them apart);
    the result is an int when every item is one.
    """
    return sum(_numbers("sum", _items_of("sum", args)), 0)


def _extreme(name: str, args: tuple[Any, ...], pick_max: bool) -> Any:
    items = _items_of(name, args)
    if not items:
        raise ValueError(f"{name}: the list is empty")
    if all(isinstance(item, str) for item in items):
        return max(items) if pick_max else min(items)
    numbers = _numbers(name, items)
    return max(numbers) if pick_max else min(numbers)


def min_(*args: Any) -> Any:
    """Smallest of numbers or of strings (a list, or several arguments)."""
    return _extreme("min", args, pick_max=False)


def max_(*args: Any) -> Any:
    """Largest of numbers or of strings (a list, or several arguments)."""
    return _extreme("max", args, pick_max=True)


def chunk(items: Any, size: Any) -> list[list[Any]]:
    """Split a list into lists of ``size`` items (the last one may be shorter)."""
    values_ = _require_list("chunk", items, "argument 1")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"chunk: size must be an int of at least 1, got {size!r}")
    return [values_[start : start + size] for start in range(0, len(values_), size)]


def pick(mapping: Any, wanted: Any) -> dict[Any, Any]:
    """The entries of ``mapping`` whose keys are listed in ``wanted`` (missing ones skipped)."""
    source = _require_map("pick", mapping, "argument 1")
    names = _require_list("pick", wanted, "argument 2")
    return {key: source[key] for key in names if key in source}


def group_by(items: Any, key: Any) -> dict[Any, list[Any]]:
    """Group a list of maps by the value of one key: ``{value: [items...]}``.

    Every item must be a map that has ``key``, and its value must be a string, an int or
    a bool (the types CEL allows as map keys).
    """
    if not isinstance(key, str):
        raise TypeError(f"group_by: key must be a string, got {type_name(key)}")
    groups: dict[Any, list[Any]] = {}
    for index, item in enumerate(_require_list("group_by", items, "argument 1")):
        entry = _require_map("group_by", item, f"item {index}")
        if key not in entry:
            raise ValueError(f"group_by: item {index} has no key {key!r}")
        value = entry[key]
        if not isinstance(value, _MAP_KEY_TYPES):
            raise TypeError(
                f"group_by: item {index} has a {type_name(value)} under {key!r};"
                " group values must be strings, ints or bools"
            )
        groups.setdefault(value, []).append(item)
    return groups


def _sorted_keys(name: str, mapping: Any) -> list[Any]:
    source = _require_map(name, mapping)
    return sorted(source, key=lambda key: (type_name(key), key))


def keys(mapping: Any) -> list[Any]:
    """The keys of a map, sorted (CEL maps have no order of their own)."""
    return _sorted_keys("keys", mapping)


def values(mapping: Any) -> list[Any]:
    """The values of a map, in the order of its sorted keys."""
    source = _require_map("values", mapping)
    return [source[key] for key in _sorted_keys("values", source)]


def flatten(items: Any, depth: Any = 1) -> list[Any]:
    """Splice nested lists into their parent, ``depth`` levels deep (default 1).

    Items that are not lists are kept as they are: ``flatten([[1, 2], 3]) == [1, 2, 3]``.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"flatten: depth must be an int of at least 0, got {depth!r}")
    result: list[Any] = []
    for item in _require_list("flatten", items):
        if isinstance(item, list | tuple) and depth > 0:
            result.extend(flatten(list(item), depth - 1))
        else:
            result.append(item)
    return result


def _identity(value: Any) -> Any:
    """A hashable stand-in for a value, equal exactly when CEL calls the values equal.

    Bools are kept apart from the ints 0 and 1 (Python would merge them); ``1`` and
    ``1.0`` are equal, as in CEL.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, list | tuple):
        return ("list", tuple(_identity(item) for item in value))
    if isinstance(value, dict):
        return ("map", frozenset((_identity(k), _identity(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def unique(items: Any) -> list[Any]:
    """The items of a list without repeats, first occurrence kept, order unchanged."""
    seen: set[Any] = set()
    result: list[Any] = []
    for item in _require_list("unique", items):
        identity = _identity(item)
        if identity not in seen:
            seen.add(identity)
            result.append(item)
    return result


SPANE_FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "merge": merge,
        "sum": sum_,
        "min": min_,
        "max": max_,
        "chunk": chunk,
        "pick": pick,
        "group_by": group_by,
        "keys": keys,
        "values": values,
        "flatten": flatten,
        "unique": unique,
    }
)
"""The SPANE data helpers, by the name expressions call them with."""

FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {**_cel_stdlib.STDLIB_FUNCTIONS, **SPANE_FUNCTIONS}
)
"""Every Python-implemented function expressions may call (dotted names for namespaces)."""

NAMESPACES: frozenset[str] = frozenset(
    {name.split(".", 1)[0] for name in FUNCTIONS if "." in name} | {"optional"}
)
"""Prefixes of namespaced functions (``math.greatest``); ``optional`` is CEL's own."""

_BY_SHORT_NAME: dict[str, dict[str, Callable[..., Any]]] = {}
for _name, _function in FUNCTIONS.items():
    _BY_SHORT_NAME.setdefault(_name.rsplit(".", 1)[-1], {})[_name] = _function


def functions_for(called: Iterable[str]) -> dict[str, Callable[..., Any]]:
    """The functions to register for an expression that calls the functions ``called``.

    ``called`` holds short names as ``cel.Program.functions()`` reports them (``greatest``
    for ``math.greatest``); registering only these keeps evaluation cheap, since the
    CEL library wraps every registered function again on each call.
    """
    selected: dict[str, Callable[..., Any]] = {}
    for name in called:
        selected.update(_BY_SHORT_NAME.get(name, {}))
    return selected
