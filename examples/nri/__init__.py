"""Neural Relational Inference with spanning-tree latent graphs: ``python -m examples.nri <command>``."""
