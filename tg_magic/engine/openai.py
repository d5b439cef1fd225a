"""`textgrad.engine.openai`: ChatOpenAI is tg-magic's OpenAI engine with TextGrad's arguments."""

from __future__ import annotations

from ..engines.names import OLLAMA_BASE_URL, ChatOpenAI

__all__ = ["OLLAMA_BASE_URL", "ChatOpenAI"]
