"""Learning to explain (Chen et al. 2018) with k-subset selection on synthetic data with known relevant features."""
