"""Recurrent token mixers: state-space models (Mamba, S4D, H3, ...) and linear attention (RetNet, GLA, DeltaNet, ...)."""
