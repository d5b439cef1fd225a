"""TextGrad's engine names, resolved to tg-magic's engines.

`gpt-*` and `o1`/`o3`/`o4`... go to the OpenAI engine, `claude-*` to Anthropic, `ollama-MODEL` to
the OpenAI-compatible engine at Ollama's default URL, `experimental:PROVIDER/MODEL` (TextGrad's
LiteLLM names) to the engine of that provider. The classes below only translate TextGrad's
constructor arguments: every call goes through tg-magic's engines (one cache, budget, usage).
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import InputError
from .anthropic import AnthropicEngine
from .base import Engine, Reply, Request
from .openai import OpenAIEngine

OLLAMA_BASE_URL = "http://localhost:11434/v1"  # TextGrad's (and Ollama's) default
DEFAULT_SYSTEM_PROMPT = "You are a helpful, creative, and smart assistant."

SHORTCUTS = {  # TextGrad's short names
    "opus": "claude-3-opus-20240229",
    "haiku": "claude-3-haiku-20240307",
    "sonnet": "claude-3-sonnet-20240229",
    "sonnet-3.5": "claude-3-5-sonnet-20240620",
}
# TextGrad providers tg-magic does not ship an engine for (name prefix -> provider).
UNSUPPORTED = {
    "azure": "Azure OpenAI",
    "gemini": "Google Gemini",
    "together": "Together",
    "command": "Cohere",
    "vllm": "vLLM",
    "groq": "Groq",
    "bedrock": "Amazon Bedrock",
}
_OPENAI_MODEL = re.compile(r"^(gpt-|chatgpt-|o\d)")


def is_textgrad_name(name: str) -> bool:
    return (
        name in SHORTCUTS
        or name.startswith(("claude", "ollama-", "experimental:"))
        or bool(_OPENAI_MODEL.match(name))
        or name.startswith(tuple(UNSUPPORTED))
    )


def make(name: str, **options: Any) -> Engine:
    """The engine for a TextGrad engine name; `options` are TextGrad's get_engine keywords."""
    name = SHORTCUTS.get(name, name)
    cache = options.pop("cache", None)
    if cache is not None and not name.startswith("experimental:"):
        raise InputError(
            f"cache= is taken with experimental:... engines, not {name} (as in TextGrad); "
            "tg-magic caches every engine's replies anyway (tg.set_cache)"
        )
    if name.startswith("experimental:"):
        return LiteLLMEngine(name.removeprefix("experimental:"), cache=cache, **options)
    if _OPENAI_MODEL.match(name):
        return ChatOpenAI(name, **options)
    if name.startswith("claude"):
        return ChatAnthropic(name, **options)
    if name.startswith("ollama-"):
        return ChatOpenAI(name.removeprefix("ollama-"), base_url=OLLAMA_BASE_URL, **options)
    for prefix, provider in UNSUPPORTED.items():
        if name.startswith(prefix):
            raise InputError(
                f"{name}: {provider} is not supported by tg-magic; use a claude-*, gpt-*, "
                "ollama-MODEL or openai:MODEL@BASE_URL engine (any OpenAI-compatible server)"
            )
    from . import SPEC_HELP

    raise InputError(f"unknown engine {name!r}: {SPEC_HELP}")


class ChatOpenAI(OpenAIEngine):
    """TextGrad's `ChatOpenAI(model_string, system_prompt, is_multimodal, base_url)`: the
    OpenAI engine (key from OPENAI_API_KEY, server from OPENAI_BASE_URL or `base_url`)."""

    def __init__(
        self,
        model_string: str = "gpt-3.5-turbo-0613",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        is_multimodal: bool = False,
        base_url: str | None = None,
    ) -> None:
        if not base_url and not os.environ.get("OPENAI_API_KEY"):
            raise InputError(
                f"{model_string} needs an OpenAI API key: set the OPENAI_API_KEY environment "
                "variable, or use a claude-* engine with ANTHROPIC_API_KEY"
            )
        super().__init__(model_string, base_url)
        self.system_prompt = system_prompt
        self.is_multimodal = is_multimodal


class ChatAnthropic(AnthropicEngine):
    """TextGrad's `ChatAnthropic(model_string, system_prompt, is_multimodal)`: the Anthropic
    engine (key from ANTHROPIC_API_KEY)."""

    def __init__(
        self,
        model_string: str = "claude-3-opus-20240229",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        is_multimodal: bool = False,
    ) -> None:
        super().__init__(model_string)
        self.system_prompt = system_prompt
        self.is_multimodal = is_multimodal


class LiteLLMEngine(Engine):
    """TextGrad's `experimental:PROVIDER/MODEL` engine. tg-magic has no LiteLLM: the provider's
    own engine answers (`anthropic/`, `openai/`, `ollama/`, or a bare claude-*/gpt-* name).

    cache: None (default) uses tg-magic's shared cache, True too, False none, or a mapping such
    as a diskcache.Cache that holds this engine's replies.
    """

    def __init__(
        self,
        model_string: str,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        is_multimodal: bool = True,
        cache: Any = None,
    ) -> None:
        if not (cache is None or isinstance(cache, bool) or _is_mapping(cache)):
            raise InputError("cache must be True, False or a diskcache.Cache (a mapping)")
        self.inner = _provider_engine(model_string)
        self.model = self.inner.model
        self.spec = f"experimental:{model_string}"
        self.system_prompt = system_prompt
        self.is_multimodal = is_multimodal
        self.reply_cache = cache

    async def _complete(self, request: Request) -> Reply:
        return await self.inner._complete(request)


def _is_mapping(obj: Any) -> bool:
    return callable(getattr(obj, "get", None)) and callable(getattr(obj, "__setitem__", None))


def _provider_engine(model_string: str) -> Engine:
    provider, _, model = model_string.partition("/")
    if not model:
        provider, model = "", model_string
    if provider == "anthropic" or (not provider and model.startswith("claude")):
        return AnthropicEngine(model)
    if provider == "openai" or (not provider and _OPENAI_MODEL.match(model)):
        return OpenAIEngine(model)
    if provider in ("ollama", "ollama_chat"):
        return OpenAIEngine(model, OLLAMA_BASE_URL)
    raise InputError(
        f"experimental:{model_string}: the provider {provider or model!r} is not supported by "
        "tg-magic; use experimental:anthropic/MODEL, experimental:openai/MODEL or "
        "experimental:ollama/MODEL"
    )
