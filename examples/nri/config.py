"""Settings of an NRI run (:class:`Config`, the paper's values) and the dataset's sizes.

No torch here, so that ``--help`` answers at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CONTROLLERS", "Config", "FULL_SIZES", "NOISE_NAMES", "PAPER_SETTINGS"]

# Samples per split of the dataset as published.
FULL_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}

# The perturbations a run may use: Sum-of-Gamma (the recipe's), Gumbel, and none (a deterministic tree).
NOISE_NAMES = ("sog", "gumbel", "none")
# AIMLE's α rules a run may use (the controller presets of difftools.AIMLE).
CONTROLLERS = ("paper", "fast", "deterministic")

# (timesteps, difference) -> (learning rate, noise temperature), the AIMLE paper's NRI settings.
PAPER_SETTINGS: dict[tuple[int, str], tuple[float, float]] = {
    (10, "central"): (5e-4, 0.1),
    (10, "forward"): (1e-4, 1.0),
    (20, "central"): (5e-4, 1.0),
    (20, "forward"): (5e-4, 0.1),
}


@dataclass
class Config:
    """Everything a run depends on; saved as ``config.json`` and in every checkpoint.

    ``lr`` and ``noise_temperature`` of ``None`` take the paper's value for (timesteps, difference).
    ``prediction_steps`` of ``None`` rolls out T − 1 steps. ``train_size`` / ``valid_size`` of
    ``None`` use whole splits (smaller values keep the first samples, for runs on small machines).
    """

    timesteps: int = 10
    estimator: str = "aimle"
    difference: str = "forward"
    lr: float | None = None
    noise_temperature: float | None = None
    imle_lambda: float = 10.0
    target_nnz: float = 1.0
    lam_scope: str = "example"
    # AIMLE's α rule: "paper" (Algorithm 1: α₀ = 0, η = 10⁻³, c counted in entries) as in the paper's
    # NRI runs, "fast" (AIMLE's defaults: α₀ = 1, c counted per solution, over active pairs) or
    # "deterministic" (the fast rule with α ≤ 1, the preset for training on decisions; pair it with noise "none").
    controller: str = "paper"
    noise: str = "sog"
    kl_weight: float = 1.0
    iterations: int = 50_000
    batch_size: int = 128
    validate_every: int = 500
    log_every: int = 50
    eval_batch_size: int = 100
    hidden: int = 256
    prediction_steps: int | None = None
    skip_first: bool = False
    seed: int = 0
    train_size: int | None = None
    valid_size: int | None = None

    def __post_init__(self) -> None:
        if self.timesteps not in (10, 20):
            raise ValueError(f"Config: timesteps must be 10 or 20, got {self.timesteps!r}")
        if self.estimator not in ("aimle", "imle"):
            raise ValueError(f"Config: estimator must be 'aimle' or 'imle', got {self.estimator!r}")
        if self.difference not in ("forward", "central"):
            raise ValueError(f"Config: difference must be 'forward' or 'central', got {self.difference!r}")
        lr, temperature = PAPER_SETTINGS[(self.timesteps, self.difference)]
        self.lr = lr if self.lr is None else self.lr
        self.noise_temperature = temperature if self.noise_temperature is None else self.noise_temperature
        self.prediction_steps = self.timesteps - 1 if self.prediction_steps is None else self.prediction_steps
        for name in ("iterations", "batch_size", "validate_every", "log_every", "eval_batch_size", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Config: {name} must be a positive int, got {value!r}")
        nnz = self.target_nnz
        if isinstance(nnz, bool) or not isinstance(nnz, (int, float)) or not nnz > 0:
            raise ValueError(f"Config: target_nnz must be a positive number, got {nnz!r}")
        if self.controller not in CONTROLLERS:
            names = ", ".join(map(repr, CONTROLLERS))
            raise ValueError(f"Config: controller must be one of {names}, got {self.controller!r}")
        if self.lam_scope not in ("example", "batch"):
            raise ValueError(f"Config: lam_scope must be 'example' or 'batch', got {self.lam_scope!r}")
        if self.noise not in NOISE_NAMES:
            raise ValueError(f"Config: noise must be one of {sorted(NOISE_NAMES)}, got {self.noise!r}")
        weight = self.kl_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise ValueError(f"Config: kl_weight must be a finite number >= 0, got {weight!r}")
        if not isinstance(self.skip_first, bool):
            raise ValueError(f"Config: skip_first must be a bool, got {self.skip_first!r}")
        if not 1 <= self.prediction_steps <= self.timesteps:
            raise ValueError(f"Config: prediction_steps must be in [1, {self.timesteps}], got {self.prediction_steps}")
