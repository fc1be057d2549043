"""Random search (Bergstra and Bengio, 2012): uniform over the candidates or the box."""

from __future__ import annotations

import numpy as np

from metabo.baselines.base import Method, random_unobserved, register


@register("random")
class RandomSearch(Method):
    supports_box = True
    uses_training_tasks = False

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        return random_unobserved(self.rng, observed)

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        return self.rng.random(self.space.dim)
