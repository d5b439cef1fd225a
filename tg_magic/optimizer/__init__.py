"""TextGrad's `textgrad.optimizer` names for tg-magic's optimizer (tg_magic.optim.TGD).

TextualGradientDescent, TGD        -> tg_magic.TGD (the same object)
TextualGradientDescentwithMomentum -> TGD with TextGrad's `momentum_window` argument
"""

from __future__ import annotations

from collections.abc import Iterable

from ..engines import Engine
from ..optim import TGD
from ..variable import Variable

TextualGradientDescent = TGD
Optimizer = TGD


class TextualGradientDescentwithMomentum(TGD):
    """TGD that shows the optimizer the last `momentum_window` values of each parameter (tg-magic
    TGD's `momentum`); only the constructor differs, to take TextGrad's arguments."""

    def __init__(
        self,
        engine: Engine | str | None = None,
        parameters: Iterable[Variable] = (),
        momentum_window: int = 0,
        constraints: Iterable[str] | None = None,
        in_context_examples: Iterable[str] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            parameters,
            engine,
            momentum=momentum_window,
            constraints=constraints,
            in_context_examples=in_context_examples,
            verbose=verbose,
        )


__all__ = ["TGD", "Optimizer", "TextualGradientDescent", "TextualGradientDescentwithMomentum"]
