"""`textgrad.engine.base.EngineLM`: tg-magic's Engine (see tg_magic.engine)."""

from __future__ import annotations

from . import EngineLM

__all__ = ["EngineLM"]
