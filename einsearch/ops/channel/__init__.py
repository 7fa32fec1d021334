"""Channel mixers: dense feed-forward layers (MLP, GLU) and mixtures of experts."""
