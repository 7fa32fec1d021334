"""Attention token mixers: softmax, sigmoid, local, sparse, routed, latent and mixture-of-heads attention."""
