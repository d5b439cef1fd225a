"""Process-wide settings of the library: the backward engine and the feedback-only mode."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .engines import Engine, default_engine, get_engine


@dataclass
class Settings:
    backward_engine: Engine | None = None
    # Feedback-only (classroom) mode: gradients are hints; no step rewrites the variable.
    feedback_only: bool = os.environ.get("TG_MAGIC_FEEDBACK_ONLY", "").lower() in (
        "1",
        "true",
        "yes",
    )
    # Seconds one model request may take before it is retried (None: the engine's default).
    request_timeout: float | None = None
    # Seconds one blocking call (forward, backward, a step) may take in all (None: no limit).
    run_deadline: float | None = None


settings = Settings()


def set_backward_engine(engine: Engine | str | None, override: bool = True) -> None:
    """The engine for gradients and optimizer steps (the paper: a strong model here)."""
    if settings.backward_engine is None or override:
        settings.backward_engine = None if engine is None else get_engine(engine)


def get_backward_engine() -> Engine:
    return settings.backward_engine or default_engine()
