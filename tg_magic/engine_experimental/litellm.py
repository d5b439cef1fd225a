"""`textgrad.engine_experimental.litellm.LiteLLMEngine`: see tg_magic.engines.names."""

from __future__ import annotations

from ..engines.names import LiteLLMEngine

__all__ = ["LiteLLMEngine"]
