"""Every setting, read from ``SPANE_*`` environment variables, in one place."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spane.core.options import CoreOptions
from spane.errors import ConfigurationError
from spane.process import LoopChoice

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """SPANE settings. Unset server URLs mean the embedded (in-memory) backend."""

    model_config = SettingsConfigDict(env_prefix="SPANE_", extra="ignore")

    amqp_url: str | None = None
    """RabbitMQ, e.g. ``amqp://guest:guest@localhost:5672/``."""
    redis_url: str | None = None
    """Redis, e.g. ``redis://localhost:6379/0``."""
    mongodb_url: str | None = None
    """MongoDB, e.g. ``mongodb://localhost:27017/spane``."""
    namespace: str = Field(default="spane", pattern=r"^[a-z][a-z0-9\-_]*$")
    """Prefix of Redis keys and RabbitMQ names; the MongoDB database unless the URL names one."""
    retention: float = Field(default=7 * 86400, gt=0)
    """Seconds a finished execution's runtime state stays in Redis (it is archived)."""
    log_level: str = "INFO"
    """``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL`` (any case)."""
    log_format: Literal["auto", "json", "text"] = "auto"
    """``json`` (one object per line), ``text``, or ``auto``: text on a terminal, else JSON."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Port of an orchestrator's / worker's ``/metrics``, ``/livez``, ``/readyz``; 0 = off."""
    event_loop: LoopChoice = "auto"
    """``auto`` (uvloop when installed), ``asyncio`` or ``uvloop`` for the spane processes."""
    gc_tuning: bool = True
    """Run the garbage collector less often (``spane.process.tune_gc``, process-wide);
    applied by the spane processes and by an embedded :class:`~spane.Engine` when it opens."""
    worker_concurrency: int = Field(default=16, ge=1, le=10_000)
    """Tasks one worker process runs at once (also its thread pool size)."""
    prefetch: int = Field(default=128, ge=1, le=10_000)
    """Orchestrator micro-batch size / inbox prefetch window."""
    node_events: bool = True
    """Publish node-level lifecycle events (execution events are always published)."""
    max_depth: int = Field(default=10, ge=1, le=100)
    """Deepest nesting of sub-workflows and loops."""
    max_value_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Limit for an execution input, one node output, one signal payload."""
    task_lease: float = Field(default=10.0, gt=0)
    """Seconds a worker's claim on a task lasts unless renewed (workers renew every third)."""
    secrets_dir: str | None = None
    """A directory of secrets, one file per name (Kubernetes secrets mounted as files);
    read by workers after ``SPANE_SECRET_<NAME>`` variables (``spane.workers.secrets``)."""
    liveness: float = Field(default=5.0, gt=0)
    """Seconds between the orchestrator's checks that a running attempt's claim is alive;
    a worker that died is noticed within ``task_lease + liveness``."""
    api_keys: SecretStr | None = None
    """API keys of ``spane api``/``spane dev``: comma-separated ``<key>:<scope>[+<scope>]``
    entries (scopes ``read``, ``write``, ``admin``); unset (and no file) = no key needed."""
    api_keys_file: str | None = None
    """A file of API key entries, one per line (``#`` comments); adds to ``api_keys``."""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    def core_options(self) -> CoreOptions:
        """The decision core's knobs from these settings."""
        return CoreOptions(
            node_events=self.node_events, max_depth=self.max_depth, liveness=self.liveness
        )

    @property
    def embedded(self) -> bool:
        """True when no server is configured: everything runs in this process."""
        return not (self.amqp_url or self.redis_url or self.mongodb_url)


def load_settings() -> Settings:
    """Settings from the environment; a bad value is a :class:`ConfigurationError` that
    names the variable (not a validation traceback)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"SPANE_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"invalid setting {problems}") from None
