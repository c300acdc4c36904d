"""CEL expressions and ``${ }`` templates (DESIGN §2, "Expressions" and "Data passing").

Pure. The modules, one job each:

- :mod:`~spane.expressions.scan`: lexical scan of a CEL source (what it reads) and of
  template text (where a ``${`` part ends);
- :mod:`~spane.expressions.program`: :class:`Expression`, compiled once and evaluated
  any number of times; :func:`evaluate_condition`;
- :mod:`~spane.expressions.values`: CEL results as plain JSON-like Python;
- :mod:`~spane.expressions.template`: :class:`Template`, rendering with deferred names;
- :mod:`~spane.expressions.functions`: the functions expressions may call;
- :mod:`~spane.expressions.limits`: the size limit of values.

Other packages import from here; ``limits`` is imported directly by the adapters, which
need only the size limit.
"""

from spane.expressions.program import (
    KNOWN_ROOTS,
    Expression,
    compile_expression,
    evaluate_condition,
)
from spane.expressions.scan import reference_scan
from spane.expressions.template import Template, compile_template

__all__ = [
    "KNOWN_ROOTS",
    "Expression",
    "Template",
    "compile_expression",
    "compile_template",
    "evaluate_condition",
    "reference_scan",
]
