"""The HTTP face of SPANE: REST under ``/v1``, a WebSocket of lifecycle events, probes.

``create_app(engine)`` returns the FastAPI application (install ``spane[api]``).
"""

from spane.api.app import create_app
from spane.api.context import ApiConfig

__all__ = ["ApiConfig", "create_app"]
