"""Process-wide settings of the library: the backward engine and the feedback-only mode."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .engines import Engine, default_engine, get_engine
from .errors import InputError


@dataclass
class Settings:
    backward_engine: Engine | None = None
    # Feedback-only (classroom) mode: gradients are hints; no step rewrites the variable.
    feedback_only: bool = os.environ.get("TG_MAGIC_FEEDBACK_ONLY", "").lower() in (
        "1",
        "true",
        "yes",
    )


settings = Settings()


def set_backward_engine(engine: Engine | str | None, override: bool = True, **options: Any) -> None:
    """The engine for gradients and optimizer steps (the paper: a strong model here).

    override=False refuses to replace an engine already set, as TextGrad does; `options` are
    get_engine's (TextGrad's cache=...)."""
    if settings.backward_engine is not None and not override:
        raise InputError(
            f"a backward engine is already set ({settings.backward_engine.spec}): "
            "pass override=True to replace it"
        )
    settings.backward_engine = None if engine is None else get_engine(engine, **options)


def get_backward_engine() -> Engine:
    return settings.backward_engine or default_engine()


class SingletonBackwardEngine:
    """TextGrad's holder of the backward engine: a view of `settings.backward_engine`."""

    def get_engine(self) -> Engine | None:
        return settings.backward_engine

    def set_engine(self, engine: Engine | str, override: bool = False) -> None:
        set_backward_engine(engine, override=override)
