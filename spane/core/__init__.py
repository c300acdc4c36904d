"""The pure runtime core: one event + an execution's state -> state changes + commands.

``begin`` starts an execution, ``decide`` applies every later event. Nothing here does
I/O, reads a clock or makes ids: time comes in as ``now``, ids are derived.
"""

from spane.core.decisions import begin, decide
from spane.core.options import CoreOptions

__all__ = ["CoreOptions", "begin", "decide"]
