"""Warcraft shortest paths (Vlastelica et al., ICLR 2020): data generator and loader, CombResNet18,
training with AIMLE and the other estimators, metrics and plots. Run ``python -m examples.warcraft``."""
