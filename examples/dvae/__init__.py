"""The K-subset discrete VAE of the AIMLE paper (Fig. 5-8) on an offline dataset."""
