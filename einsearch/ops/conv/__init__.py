"""Convolutional token mixers: short and long (implicit, FFT) convolutions and their gated forms."""
