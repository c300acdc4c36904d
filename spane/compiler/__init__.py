"""The graph compiler: a workflow definition becomes an immutable plan (DESIGN §2-§3).

Pure. The modules, one job each:

- :mod:`~spane.compiler.plan`: :class:`Plan`, :class:`PlanNode` and their parts;
- :mod:`~spane.compiler.compile`: :func:`compile_plan` (validates, then compiles every
  expression and precomputes what the decision core needs) and :func:`checksum`;
- :mod:`~spane.compiler.validation`: :func:`validate`, every problem with its location,
  running the checks of :mod:`~spane.compiler.reference_checks`,
  :mod:`~spane.compiler.node_checks`, :mod:`~spane.compiler.expression_checks` and
  :mod:`~spane.compiler.flow_checks` (sharing :mod:`~spane.compiler.scope` and
  :mod:`~spane.compiler.hints`);
- :mod:`~spane.compiler.graph`: structural helpers shared by validation and compilation;
- :mod:`~spane.compiler.describe`: the plan in words and as a Mermaid diagram.
"""

from spane.compiler.compile import checksum, compile_plan
from spane.compiler.describe import describe_plan, to_mermaid
from spane.compiler.plan import (
    MAX_PATHS,
    PORT_ALWAYS,
    PORT_DEFAULT,
    PORT_ERROR,
    PORT_SUCCESS,
    Edge,
    JoinMode,
    NodeKind,
    Plan,
    PlanNode,
    RetrySettings,
)
from spane.compiler.validation import validate

__all__ = [
    "MAX_PATHS",
    "PORT_ALWAYS",
    "PORT_DEFAULT",
    "PORT_ERROR",
    "PORT_SUCCESS",
    "Edge",
    "JoinMode",
    "NodeKind",
    "Plan",
    "PlanNode",
    "RetrySettings",
    "checksum",
    "compile_plan",
    "describe_plan",
    "to_mermaid",
    "validate",
]
