"""Settings of a Warcraft run: methods, precisions and :class:`TrainConfig` (no torch: ``--help`` stays quick)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["METHODS", "PRECISIONS", "TrainConfig"]

METHODS = ("aimle", "aimle-forward", "imle", "blackbox", "perturbed-fy", "spo+")
PRECISIONS = ("fp32", "bf16")


def _aimle_preset(controller: str | None) -> dict:
    """The AIMLE preset a controller name starts from (imported here: ``--help`` needs no torch)."""
    from difftools.estimators import AIMLE_PRESETS

    return AIMLE_PRESETS.get(controller or "fast", AIMLE_PRESETS["fast"])


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in the checkpoint as a plain dict."""

    data_dir: str = "data"
    size: int = 12
    method: str = "aimle"
    difference: str | None = None  # "central" or "forward"; default: central for AIMLE, forward for I-MLE
    epochs: int = 50
    batch_size: int = 70
    lr: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [30, 40])
    lr_decay: float = 0.1
    seed: int = 0
    device: str = "cpu"
    out_dir: str = "runs/warcraft"
    train_maps: int | None = None  # use only the first N training maps
    lam: float = 20.0  # λ of I-MLE and Blackbox
    # Perturbation of AIMLE / I-MLE: "gumbel", "sum-of-gamma" or "none"; None: the method's own (Gumbel for
    # I-MLE; for AIMLE its controller's preset: Gumbel, none for "deterministic").
    noise: str | None = None
    noise_temperature: float = 1.0  # the noise scale of AIMLE / I-MLE and of perturbed-fy's Perturbed layer
    samples: int | None = None  # perturbation samples per instance (AIMLE / I-MLE / Perturbed)
    # AIMLE's own arguments; None leaves the argument to dt.AIMLE's defaults (docs/aimle-defaults.md).
    target_nnz: float | None = None  # c
    aimle_step: float | None = None  # η
    aimle_controller: str | None = None  # the α rule: "fast", "deterministic", "paper" (Algorithm 1) or "reference"
    lam_scope: str | None = None  # λ (Eq. 8) per "example", or one per "batch" (the reference code)
    aimle_count: str | None = None  # what c counts: "entries" (Eq. 9) or "solution" (÷ the MAP state's size)
    aimle_count_over: str | None = None  # the count's mean over the whole "batch" (Eq. 9) or the "active" maps
    initial_alpha: float | None = None  # α₀
    max_alpha: float | None = None  # the fast rule's ceiling on α (FastRule(max_alpha=...)); None: AIMLE's
    solver_executor: str = "none"  # "none" (batched torch solver) or "dask" (reference Dijkstra per map)
    scheduler_address: str | None = None
    precision: str = "fp32"  # "fp32" or "bf16": autocast of the network only; solver and loss stay fp32
    ddp: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method == "aimle-forward":
            self.method, self.difference = "aimle", "forward"
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.difference is None and self.method in ("aimle", "imle"):
            # AIMLE's default (its controller's preset) for AIMLE, the I-MLE paper's for I-MLE.
            central = self.method == "aimle" and _aimle_preset(self.aimle_controller)["central"]
            self.difference = "central" if central else "forward"
        if self.difference not in (None, "central", "forward"):
            raise ValueError(f"difference must be 'central' or 'forward', got {self.difference!r}")
        if self.noise not in (None, "gumbel", "sum-of-gamma", "none"):
            raise ValueError(f"noise must be 'gumbel', 'sum-of-gamma' or 'none', got {self.noise!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.solver_executor not in ("none", "dask"):
            raise ValueError(f"solver_executor must be 'none' or 'dask', got {self.solver_executor!r}")
        if self.solver_executor == "dask" and not self.scheduler_address:
            raise ValueError("solver_executor='dask' needs a scheduler address (--scheduler tcp://HOST:PORT)")
        if self.max_alpha is not None and self.aimle_controller not in (None, "fast", "deterministic"):
            raise ValueError(
                "max_alpha is the ceiling of the fast rule (controllers fast and deterministic); it cannot be used "
                f"with controller {self.aimle_controller!r}"
            )
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    @classmethod
    def from_saved(cls, saved: dict) -> TrainConfig:
        """The config stored in a checkpoint or an archived ``run.json``.

        Runs saved before the rename hold ``sigma``, perturbed-fy's noise scale, which is now
        ``noise_temperature`` (the one name of the noise scale; theirs was unused by perturbed-fy).
        """
        saved = dict(saved)
        # Runs saved before AIMLE's arguments could be left to its defaults hold all of them but
        # these, whose values then were Eq. 9's (and α₀ the controller's, which None still means).
        if saved.get("method") == "aimle" and "target_nnz" in saved:
            saved.setdefault("aimle_count", "entries")
            saved.setdefault("aimle_count_over", "batch")
        if "sigma" in saved:
            sigma = saved.pop("sigma")
            if saved.get("method") == "perturbed-fy":
                saved["noise_temperature"] = sigma
        return cls(**saved)

    @property
    def effective_noise(self) -> str:
        """The perturbation the method uses: ``noise``, or the method's own where it is None."""
        if self.noise is not None:
            return self.noise
        if self.method == "aimle":
            return _aimle_preset(self.aimle_controller)["noise"] or "none"
        return "gumbel"

    @property
    def label(self) -> str:
        """Human-readable method name, e.g. ``AIMLE (central)``."""
        names = {
            "aimle": "AIMLE",
            "imle": "I-MLE",
            "blackbox": "Blackbox",
            "perturbed-fy": "Perturbed + FY",
            "spo+": "SPO+",
        }
        return names[self.method] + (f" ({self.difference})" if self.difference else "")
