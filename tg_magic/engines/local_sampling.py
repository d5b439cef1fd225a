"""How the embedded model picks each token of one sequence: the optimizer's grammar where the
request has one, then greedy or seeded sampling, as llama-cpp-python's chat completion did (no
repeat penalty: its default). Everything a choice depends on belongs to the sequence (its grammar
state, its random generator), so a reply is the same whatever else is decoded beside it.

The grammar is llama.cpp's; checking all ~49k tokens against it costs ~7 ms a token, so the best
few candidates are checked first and the whole vocabulary only when too few of them pass. That
gives the same choice as masking every token first (greedy: the best allowed token; sampling: the
TOP_K best allowed ones, all that llama.cpp's top-k sampler keeps of the masked vocabulary).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05  # llama-cpp-python's chat completion defaults
CANDIDATES = (64, 1024)  # checked against the grammar before the whole vocabulary is


class Scratch:
    """A token-data array the size of the vocabulary, reused by every sequence's grammar checks
    (one decoder thread samples one sequence at a time)."""

    def __init__(self, low: Any, n_vocab: int) -> None:
        self.low = low
        self.data = np.zeros(
            n_vocab, dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)])
        )
        self.all_ids = np.arange(n_vocab, dtype=np.intc)
        pointer = self.data.ctypes.data_as(low.llama_token_data_p)
        self.array = low.llama_token_data_array(data=pointer, size=0, selected=-1, sorted=False)

    def _apply(self, sampler: Any, ids: np.ndarray, logits: np.ndarray) -> None:
        n = len(ids)
        self.data["id"][:n] = ids
        self.data["logit"][:n] = logits[ids]
        self.data["p"][:n] = 0.0
        self.array.size, self.array.selected, self.array.sorted = n, -1, False
        self.low.llama_sampler_apply(sampler, ctypes.byref(self.array))

    def allowed(self, grammar: Any, ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Which of `ids` the grammar accepts next (it marks the others -inf)."""
        self._apply(grammar, ids, logits)
        return np.asarray(self.data["logit"][: len(ids)] != -np.inf)

    def draw(self, chain: Any, ids: np.ndarray, logits: np.ndarray) -> int:
        """The token that a sampler chain ending in a random draw picks among `ids`."""
        self._apply(chain, ids, logits)
        return int(self.data["id"][self.array.selected])


def _best(logits: np.ndarray, count: int) -> np.ndarray:
    """The `count` best token ids, best first (ties: lower id first, as llama.cpp's greedy)."""
    count = min(count, len(logits))
    top = np.argpartition(-logits, count - 1)[:count]
    return top[np.lexsort((top, -logits[top]))]


class Sampler:
    """One sequence's token choice. `temperature` 0 is greedy; above 0, llama.cpp's samplers
    (top-k, top-p, min-p, temperature, then a draw from a generator seeded by `seed`) run on
    the TOP_K best allowed tokens, as llama-cpp-python's chat completion ran them."""

    def __init__(
        self, low: Any, vocab: Any, grammar: Any | None, temperature: float, seed: int
    ) -> None:
        self.low = low
        self.grammar = self.chain = None
        if grammar is not None:
            self.grammar = low.llama_sampler_init_grammar(
                vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
            )
            if not self.grammar:
                raise ValueError("llama.cpp could not parse the grammar")
        if temperature > 0:
            self.chain = low.llama_sampler_chain_init(low.llama_sampler_chain_default_params())
            for sampler in (
                low.llama_sampler_init_top_k(TOP_K),
                low.llama_sampler_init_typical(1.0, 1),
                low.llama_sampler_init_top_p(TOP_P, 1),
                low.llama_sampler_init_min_p(MIN_P, 1),
                low.llama_sampler_init_temp(temperature),
                low.llama_sampler_init_dist(seed),
            ):
                low.llama_sampler_chain_add(self.chain, sampler)

    def close(self) -> None:
        for sampler in (self.grammar, self.chain):
            if sampler is not None:
                self.low.llama_sampler_free(sampler)
        self.grammar = self.chain = None

    def pick(self, raw: np.ndarray, scratch: Scratch) -> int | None:
        """The next token from this step's logits (None: the grammar allows no token)."""
        logits = np.asarray(raw, dtype=np.float32)
        if self.chain is None:
            best = int(np.argmax(logits))
            if self.grammar is None or scratch.allowed(self.grammar, np.array([best]), logits)[0]:
                return best
        chosen = self._allowed_best(logits, scratch, 1 if self.chain is None else TOP_K)
        if chosen is None or not len(chosen):
            return None
        if self.chain is None:
            return int(chosen[0])
        return scratch.draw(self.chain, chosen, logits)

    def _allowed_best(self, logits: np.ndarray, scratch: Scratch, count: int) -> np.ndarray | None:
        """The `count` best tokens that the grammar allows, best first."""
        if self.grammar is None:
            return _best(logits, count)
        for candidates in CANDIDATES:
            order = _best(logits, candidates)
            passed = order[scratch.allowed(self.grammar, order, logits)][:count]
            # Exact only if nothing outside the candidates could rank among the passed ones.
            if len(passed) == count and logits[passed[-1]] > logits[order[-1]]:
                return passed
        mask = scratch.allowed(self.grammar, scratch.all_ids, logits)
        allowed = scratch.all_ids[mask]
        if not len(allowed):
            return None
        return allowed[_best(logits[allowed], count)]

    def accept(self, token: int) -> None:
        if self.grammar is not None:
            self.low.llama_sampler_accept(self.grammar, token)
