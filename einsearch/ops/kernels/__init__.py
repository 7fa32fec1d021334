"""Compiled CPU kernels (C sources in csrc/, built with gcc at first use) and their loader."""
