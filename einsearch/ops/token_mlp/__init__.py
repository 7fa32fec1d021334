"""Token-mixing MLPs: dense weights across positions (MLP-Mixer, N-informer)."""
