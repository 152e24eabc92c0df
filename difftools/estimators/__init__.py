"""The estimators, all presets or small siblings of the one perturb-and-MAP core (:mod:`difftools.core`).

* :mod:`~difftools.estimators.finite_difference`: finite differences of MAP states along the
  downstream gradient: :class:`FiniteDifference`, :class:`IMLE` (fixed λ), :class:`Blackbox` (no noise);
* :mod:`~difftools.estimators.aimle`: :class:`AIMLE` (adaptive λ), with its α rules in
  :mod:`~difftools.estimators.alpha_rules`;
* :mod:`~difftools.estimators.score_function`: :class:`ScoreFunction` and :class:`Perturbed`;
* :mod:`~difftools.estimators.straight_through`: :class:`STE`.

Losses built on these live in :mod:`difftools.losses`.
"""

from difftools.estimators.aimle import AIMLE, AIMLE_PRESETS
from difftools.estimators.alpha_rules import AlphaRule, DeterministicRule, FastRule, PaperRule
from difftools.estimators.finite_difference import IMLE, Blackbox, FiniteDifference
from difftools.estimators.score_function import Perturbed, ScoreFunction
from difftools.estimators.straight_through import STE

__all__ = [
    "AIMLE",
    "AIMLE_PRESETS",
    "IMLE",
    "STE",
    "AlphaRule",
    "Blackbox",
    "DeterministicRule",
    "FastRule",
    "FiniteDifference",
    "PaperRule",
    "Perturbed",
    "ScoreFunction",
]
