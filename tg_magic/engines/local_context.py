"""One llama.cpp context of the embedded model's decoder: a KV cache of several streams, one
per sequence, and the batch that feeds them. Only the llama.cpp calls live here; what runs when
is local_batch.py's."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ..errors import EngineError

CHUNK = 512  # tokens per llama_decode at most: the batch's size


class Context:
    """`streams` KV-cache streams of `per_stream` tokens each, on `threads` llama.cpp threads.

    Flash attention stays off: with it on, a sequence decoded alone on 2 threads gets other
    logits than beside others (measured), and a reply must not depend on its neighbours."""

    def __init__(self, llama: Any, streams: int, per_stream: int, threads: int) -> None:
        import llama_cpp

        self.low = low = llama_cpp.llama_cpp
        self.vocab = low.llama_model_get_vocab(llama.model)
        self.n_vocab = int(llama.n_vocab())
        params = low.llama_context_default_params()
        params.n_ctx = streams * per_stream
        params.n_batch = params.n_ubatch = CHUNK
        params.n_seq_max = streams
        params.kv_unified = False  # a stream per sequence
        params.flash_attn_type = low.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        self.ctx = low.llama_init_from_model(llama.model, params)
        if not self.ctx:
            raise EngineError("llama.cpp could not make a context for the local model")
        self.memory = low.llama_get_memory(self.ctx)
        self.batch = low.llama_batch_init(CHUNK, 0, 1)

    def close(self) -> None:
        if self.batch is not None:
            self.low.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            self.low.llama_free(self.ctx)
            self.ctx = None

    def set_threads(self, threads: int) -> None:
        self.low.llama_set_n_threads(self.ctx, threads, threads)

    def copy(self, source: int, target: int) -> None:
        """Make stream `target` a copy of stream `source` (done at the next decode)."""
        self.low.llama_memory_seq_rm(self.memory, target, -1, -1)
        self.low.llama_memory_seq_cp(self.memory, source, target, -1, -1)  # whole streams only

    def keep(self, seq: int, tokens: int) -> None:
        """Forget stream `seq` past its first `tokens` positions."""
        self.low.llama_memory_seq_rm(self.memory, seq, tokens, -1)

    def decode(self, entries: list[tuple[int, int, int]], last_only: bool) -> None:
        """Evaluate (token, position, sequence) entries; logits for every entry, or the last."""
        batch = self.batch
        batch.n_tokens = len(entries)
        for i, (token, pos, seq) in enumerate(entries):
            batch.token[i], batch.pos[i] = token, pos
            batch.seq_id[i][0], batch.n_seq_id[i] = seq, 1
            batch.logits[i] = not last_only or i == len(entries) - 1
        code = self.low.llama_decode(self.ctx, batch)
        if code != 0:
            raise EngineError(f"llama_decode returned {code}")

    def logits(self, i: int) -> np.ndarray:
        """The logits of the batch's i-th entry (valid until the next decode)."""
        pointer = self.low.llama_get_logits_ith(self.ctx, i)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def ends(self, token: int) -> bool:
        return bool(self.low.llama_vocab_is_eog(self.vocab, token))

    def piece(self, token: int) -> bytes:
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = self.low.llama_token_to_piece(self.vocab, token, buffer, size, 0, False)
            if n >= 0:
                return buffer.raw[:n]
            size = -n
