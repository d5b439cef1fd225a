"""`textgrad.engine.anthropic`: ChatAnthropic is tg-magic's Anthropic engine with TextGrad's
arguments."""

from __future__ import annotations

from ..engines.names import ChatAnthropic

__all__ = ["ChatAnthropic"]
