"""`spacy_binder.warmup_linear.v1`: thinc's warm-up and linear decay, checked.

thinc's schedule accepts a warm-up longer than the run (the learning rate then
never reaches its peak) and `total_steps = 0` (spaCy's "no step limit", which
makes the rate 0 after warm-up): both train a weak model without a word.
"""
from typing import Iterable

from spacy.util import registry
from thinc.api import warmup_linear


@registry.schedules("spacy_binder.warmup_linear.v1")
def checked_warmup_linear(initial_rate: float, warmup_steps: int, total_steps: int) -> Iterable[float]:
    """Warm up for `warmup_steps`, then decay linearly to 0 at `total_steps`."""
    if total_steps < 1:
        raise ValueError(
            f"The learning rate schedule needs total_steps >= 1, got {total_steps}: "
            "it decays to 0 at total_steps, usually ${training.max_steps}. Set "
            "[training] max_steps to the number of steps to train."
        )
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"warmup_steps={warmup_steps} must lie in [0, total_steps={total_steps}] "
            "([training] max_steps): with a longer warm-up the learning rate never "
            f"reaches initial_rate={initial_rate}. Lower [training.optimizer.learn_rate] "
            f"warmup_steps (e.g. to {total_steps // 8}) or raise max_steps."
        )
    return warmup_linear(initial_rate, warmup_steps, total_steps)
