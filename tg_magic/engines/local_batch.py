"""The embedded model's decoder: requests in flight together (the k candidates of a step, the
examples of a batch) are decoded as parallel sequences of one llama.cpp batch, one KV-cache
stream each, every sequence sampled on its own (local_sampling.py).

A reply depends on its request only, so the reply cache stays honest. Measured with the
llama.cpp of llama-cpp-python 0.3.36 on CPU: with flash attention off, a sequence's logits are
bitwise the same decoded alone or beside others, in a context of 1 or 8 streams, on 1 or 2
threads (with it on, a sequence decoded alone on 2 threads differs, so it stays off). A prompt's
logits do depend on how it is cut into batches (a piece of one token is computed another way):
every prompt is evaluated by itself, in chunks of CHUNK tokens from its start, and a prompt or
whole chunks of one already in some stream (the k candidates of a step share their prompt) are
copied instead of evaluated again.

The KV cache has CELLS tokens in all; they are split into 8 streams of 2048 tokens, or fewer
longer ones when a request needs it (switched while nothing is generating).

Decoding together gains what llama.cpp's own step gains, no more: SmolLM2's Q4_1 layers take one
dot product per token at 8 tokens as at 1 (ggml_vec_dot_q4_1_q8_1 in a profile; only the Q8_0
output layer is batched), so on this project's 2-core machine a step of 8 tokens costs ~7x one
on 1 thread and ~5x on 2, and 8 sequences at once make ~1.1x and ~1.6x the tokens a second of
one; our Python is 1-4 % of the decoder's time (benchmarks/local.py prints all three). Every
llama.cpp call runs on the decoder's one thread: while another thread that ran llama.cpp on 2
threads lives, libgomp stops spinning at its barriers and a step of one token takes 2.5x as long.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EngineError
from . import local_threads
from .local_context import CHUNK, Context
from .local_sampling import Sampler, Scratch

CELLS = 16384  # KV-cache tokens in all (~375 MB for SmolLM2-135M)
LAYOUTS = ((8, CELLS // 8), (4, CELLS // 4), (2, CELLS // 2))  # (streams, tokens per stream)


@dataclass(eq=False)
class Job:
    """One completion: prompt tokens in, generated tokens out."""

    tokens: list[int]
    max_tokens: int
    temperature: float = 0.0
    seed: int = 0
    grammar: Any = None  # a llama_cpp.LlamaGrammar the reply must follow
    stop: tuple[bytes, ...] = ()  # text that ends the reply (not included)
    future: Future[Result] = field(default_factory=Future)
    started: threading.Event = field(default_factory=threading.Event)  # its prompt is in

    @property
    def need(self) -> int:
        return len(self.tokens) + self.max_tokens


@dataclass(frozen=True)
class Result:
    text: str
    tokens: list[int]
    prompt_tokens: int


@dataclass
class Stats:
    """What the decoder did, for tests and benchmarks."""

    steps: int = 0  # llama_decode calls for generated tokens
    decode_seconds: float = 0.0  # spent in llama_decode (prompts and steps): the rest is ours
    batched_steps: int = 0  # of them, with two sequences or more
    widest: int = 0  # the most sequences in one step
    prompt_tokens: int = 0  # prompt tokens evaluated
    shared_tokens: int = 0  # prompt tokens copied from another stream instead
    cancelled: int = 0
    threads: int = 0  # llama.cpp threads now
    thread_changes: list[int] = field(default_factory=list)  # adapted while generating
    layouts: list[tuple[int, int]] = field(default_factory=list)  # contexts made


class _Slot:
    """One KV-cache stream: the tokens whose keys and values it holds, and the sequence it is
    generating, if any. A finished sequence's tokens stay until the stream is reused."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.kv: list[int] = []
        self.prompt: list[int] = []
        self.prompt_logits: np.ndarray | None = None  # of the last token of `prompt`
        self.job: Job | None = None
        self.sampler: Sampler | None = None
        self.out: list[int] = []
        self.text = bytearray()
        self.next: int | None = None  # the token to feed at the next step
        self.used = 0.0

    def shareable(self, tokens: list[int]) -> int:
        """How many of `tokens` can be copied from this stream: the whole prompt if it is this
        stream's prompt, else whole CHUNKs of it evaluated the same way (never its last token,
        whose logits are needed)."""
        if self.prompt_logits is not None and self.prompt == tokens:
            return len(tokens)
        limit = min(len(self.kv), (len(self.prompt) // CHUNK) * CHUNK, len(tokens) - 1)
        common = 0
        while common < limit and self.kv[common] == tokens[common]:
            common += 1
        return (common // CHUNK) * CHUNK


class Decoder:
    """Decodes submitted Jobs on its own thread, all active ones in each llama.cpp batch."""

    def __init__(
        self,
        llama: Any,
        probe: Callable[[], float | None] | None = None,
        adapt_every: float = local_threads.ADAPT_EVERY,
    ) -> None:
        import llama_cpp

        self.low = llama_cpp.llama_cpp
        self.llama = llama
        self.vocab = self.low.llama_model_get_vocab(llama.model)
        self.scratch = Scratch(self.low, int(llama.n_vocab()))
        self.stats = Stats()
        # the load measured now, then again while generating (TG_MAGIC_LOCAL_THREADS: fixed)
        self.fixed = local_threads.override()
        self.probe = probe or local_threads.LoadProbe()
        self.adapt_every = adapt_every  # seconds between readings while generating
        self.stats.threads = local_threads.initial(self.probe)
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._context: Context | None = None
        self._layout = (0, 0)
        self._slots: list[_Slot] = []
        self._adapted = time.monotonic()

    # -- the public side ----------------------------------------------------------------------

    def submit(self, job: Job) -> Future[Result]:
        with self._cond:
            if self._closing:
                raise EngineError("the local model was closed")
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tg_magic-local-decoder", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return job.future

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the thread (calls still waiting or running get an EngineError) and free the
        context; False if the thread did not stop in time, in which case nothing is freed."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
        self._free_context()
        return True

    # -- the decoding thread ------------------------------------------------------------------

    def _active(self) -> list[_Slot]:
        return [s for s in self._slots if s.job is not None]

    def _run(self) -> None:
        while True:
            with self._cond:
                idle = not self._pending and not self._active()
                while not self._closing and not self._pending and not self._active():
                    self._cond.wait()
                if self._closing:
                    break
            if idle and self.fixed is None:
                # a reading spanning the idle time would count what ran meanwhile (the tests
                # that score candidates, say): measure from now
                self.probe()
                self._adapted = time.monotonic()
            try:
                self._drop_cancelled()
                self._admit()
                if any(s.next is not None for s in self._slots):
                    self._step()
                self._adapt_threads()
            except Exception as exc:  # a llama.cpp failure: fail what runs, start afresh
                self._fail_all(EngineError(f"the local model failed: {exc}"))
        closed = EngineError("the local model was closed")
        with self._cond:
            pending, self._pending = list(self._pending), deque()
        for job in pending:
            _settle(job.future, closed)
        self._fail_all(closed, free=False)  # the caller of close() frees the context

    def _fail_all(self, error: EngineError, free: bool = True) -> None:
        for slot in self._slots:
            if slot.job is not None:
                _settle(slot.job.future, error)
                self._release(slot)
        if free:
            self._free_context()

    def _drop_cancelled(self) -> None:
        for slot in self._active():
            assert slot.job is not None
            if slot.job.future.cancelled():
                self._finish(slot, cancelled=True)

    def _next_job(self) -> Job | None:
        with self._cond:
            while self._pending and self._pending[0].future.cancelled():
                self._pending.popleft()
                self.stats.cancelled += 1
            return self._pending[0] if self._pending else None

    def _admit(self) -> None:
        sources: set[int] = set()  # streams copied from in this round: not overwritten in it
        copied: set[int] = set()  # streams copied into: their data arrives at the next decode
        while (job := self._next_job()) is not None:
            if job.need > LAYOUTS[-1][1]:
                self._take(job)
                _settle(job.future, EngineError(f"a request of {job.need} tokens is too long"))
                continue
            if not self._active():
                self._ensure_layout()
            elif job.need > self._layout[1]:
                return  # it needs longer streams: they are made once the running ones finish
            slot = self._choose_slot(job, sources)
            if slot is None:
                return
            self._take(job)
            self._start(slot, job, sources, copied)

    def _take(self, job: Job) -> None:
        with self._cond:
            self._pending.remove(job)

    def _ensure_layout(self) -> None:
        """The layout with the most streams that fits the requests next in line."""
        with self._cond:
            need = max(j.need for j in list(self._pending)[: LAYOUTS[0][0]])
        layout = next((lay for lay in LAYOUTS if lay[1] >= need), LAYOUTS[-1])
        if layout != self._layout or self._context is None:
            self._free_context()
            self._context = Context(self.llama, *layout, threads=self.stats.threads)
            self._layout = layout
            self._slots = [_Slot(i) for i in range(layout[0])]
            self.stats.layouts.append(layout)

    def _choose_slot(self, job: Job, sources: set[int]) -> _Slot | None:
        free = [s for s in self._slots if s.job is None and s.seq not in sources]
        if not free:
            return None
        # a free stream that already holds the prompt is reused in place; else the least used
        return max(free, key=lambda s: (s.shareable(job.tokens), -s.used))

    def _start(self, slot: _Slot, job: Job, sources: set[int], copied: set[int]) -> None:
        """Put the job's prompt in the slot's stream (copied where another stream has it) and
        pick its first token."""
        try:
            sampler = Sampler(self.low, self.vocab, job.grammar, job.temperature, job.seed)
        except Exception as exc:
            _settle(job.future, EngineError(f"the local model cannot sample this request: {exc}"))
            return
        slot.job, slot.sampler, slot.out, slot.text = job, sampler, [], bytearray()
        slot.used = time.monotonic()
        context = self._context
        assert context is not None
        candidates = [s for s in self._slots if s is slot or s.seq not in copied]
        source = max(candidates, key=lambda s: (s.shareable(job.tokens), s is slot))
        shared = source.shareable(job.tokens)
        logits: np.ndarray | None = None
        if shared and source is not slot:
            context.copy(source.seq, slot.seq)
            sources.add(source.seq)
            copied.add(slot.seq)
        context.keep(slot.seq, shared)
        if shared == len(job.tokens):
            logits = source.prompt_logits
        slot.kv = list(job.tokens[:shared])
        slot.prompt, slot.prompt_logits = [], None
        self.stats.shared_tokens += shared
        for start in range(shared, len(job.tokens), CHUNK):
            piece = job.tokens[start : start + CHUNK]
            self._decode([(t, start + i, slot.seq) for i, t in enumerate(piece)], True)
            slot.kv.extend(piece)
            self.stats.prompt_tokens += len(piece)
            logits = context.logits(len(piece) - 1).copy()
        assert logits is not None
        slot.prompt, slot.prompt_logits = list(job.tokens), logits
        job.started.set()
        self._choose(slot, logits)

    def _choose(self, slot: _Slot, logits: np.ndarray) -> None:
        """Sample the slot's next token; finish the sequence when it ends."""
        job, sampler = slot.job, slot.sampler
        assert job is not None and sampler is not None
        slot.next = None
        if len(slot.out) >= job.max_tokens:
            return self._finish(slot)
        token = sampler.pick(logits, self.scratch)
        assert self._context is not None
        if token is None or self._context.ends(token):
            return self._finish(slot)
        sampler.accept(token)
        slot.out.append(token)
        slot.text += self._context.piece(token)
        tail = bytes(slot.text[-(max((len(s) for s in job.stop), default=0) + 64) :])
        if any(stop in tail for stop in job.stop) or len(slot.out) >= job.max_tokens:
            return self._finish(slot)
        slot.next = token

    def _step(self) -> None:
        feeding = [s for s in self._slots if s.next is not None]
        context = self._context
        assert context is not None
        self._decode([(s.next, len(s.kv), s.seq) for s in feeding], False)  # type: ignore[misc]
        self.stats.steps += 1
        self.stats.batched_steps += len(feeding) > 1
        self.stats.widest = max(self.stats.widest, len(feeding))
        for i, slot in enumerate(feeding):
            assert slot.next is not None
            slot.kv.append(slot.next)
            self._choose(slot, context.logits(i))

    def _decode(self, entries: list[tuple[int, int, int]], last_only: bool) -> None:
        assert self._context is not None
        start = time.perf_counter()
        self._context.decode(entries, last_only)
        self.stats.decode_seconds += time.perf_counter() - start

    def _finish(self, slot: _Slot, cancelled: bool = False) -> None:
        job = slot.job
        assert job is not None
        if cancelled:
            self.stats.cancelled += 1
        else:
            text = bytes(slot.text)
            for stop in job.stop:
                text = text.split(stop, 1)[0]
            result = Result(text.decode("utf-8", errors="ignore"), slot.out, len(job.tokens))
            _settle(job.future, result)
        self._release(slot)

    def _free_context(self) -> None:
        if self._context is not None:
            self._context.close()
            self._context = None
        self._slots, self._layout = [], (0, 0)

    def _release(self, slot: _Slot) -> None:
        if slot.sampler is not None:
            slot.sampler.close()
        slot.job, slot.sampler, slot.next = None, None, None

    def _adapt_threads(self) -> None:
        now = time.monotonic()
        if self.fixed is not None or now - self._adapted < self.adapt_every:
            return
        self._adapted = now
        others = self.probe()
        if others is None or self._context is None:
            return
        threads = local_threads.choose(local_threads.cores(), others)
        if threads != self.stats.threads:
            self._context.set_threads(threads)
            self.stats.threads = threads
            self.stats.thread_changes.append(threads)


def _settle(future: Future[Result], outcome: Result | Exception) -> None:
    """Complete a job's future, unless its caller cancelled it meanwhile."""
    try:
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass
