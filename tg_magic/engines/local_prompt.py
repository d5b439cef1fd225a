"""The request as the local model's prompt: chat messages cut in the middle to fit its context,
rendered by the model's own chat template."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import EngineError
from .base import Request

# Room left for the chat template's own tokens (role markers, a default system prompt).
TEMPLATE_TOKENS = 64
CUT_MARKER = "\n\n[... middle of the text cut: it did not fit the local model's context ...]\n\n"


def chat_format(llama: Any) -> Callable[..., Any]:
    """The chat template llama-cpp-python would use for this model (its Jinja template when the
    GGUF has one), as a function of the messages."""
    from llama_cpp import llama_chat_format

    name = llama.chat_format or ""
    if name.startswith("chat_template."):
        key = "tokenizer.chat_template" + ("" if name == "chat_template.default" else name[13:])
        eos, bos = llama.token_eos(), llama.token_bos()
        text = llama._model.token_get_text
        return llama_chat_format.Jinja2ChatFormatter(
            template=llama.metadata[key],
            eos_token=text(eos) if eos != -1 else "",
            bos_token=text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
    formatter = getattr(llama_chat_format, "format_" + name.replace("-", "_"), None)
    if formatter is None:
        raise EngineError(
            f"the local model's chat format {name!r} is unknown: use a GGUF model file that "
            "includes a chat template (tokenizer.chat_template)"
        )
    return formatter


def tokens(llama: Any, text: str) -> list[int]:
    """`text` as the model's tokens (special markers in it stay plain text)."""
    return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def cut_middle(llama: Any, text: str, limit: int) -> str:
    """`text` in at most about `limit` tokens: its start and end kept, a marker in between."""
    ids = tokens(llama, text)
    if len(ids) <= limit:
        return text
    # Re-tokenizing the joined text can merge or split a few tokens at the two seams.
    keep = max(limit - len(tokens(llama, CUT_MARKER)) - 8, 2)
    head, tail = ids[: keep - keep // 2], ids[len(ids) - keep // 2 :]

    def text_of(part: list[int]) -> str:
        return bytes(llama.detokenize(part)).decode("utf-8", errors="ignore")

    return text_of(head) + CUT_MARKER + text_of(tail)


def messages(llama: Any, request: Request, max_out: int, context: int) -> list[dict[str, str]]:
    """The chat messages, cut in the middle if needed so prompt and reply fit the context."""
    room = context - max_out - TEMPLATE_TOKENS
    chat = []
    used = 0
    if request.system:
        system = cut_middle(llama, request.system, room // 2)
        used = len(tokens(llama, system))
        chat.append({"role": "system", "content": system})
    chat.append({"role": "user", "content": cut_middle(llama, request.prompt, room - used)})
    return chat
