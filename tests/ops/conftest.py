import pytest

from einsearch.ops.kernels import loader as cpu_kernels


@pytest.fixture(params=["kernel", "torch"])
def backend(request, monkeypatch):
    """Runs a test on the compiled CPU kernels and on the PyTorch forms (which GPUs use)."""
    if request.param == "torch":
        monkeypatch.setenv("EINSEARCH_CPU_KERNELS", "0")
    else:  # the test machines have gcc: a kernel that fails to build is a failure, not a skip
        for name in ("selective_scan", "depthwise_conv"):
            assert cpu_kernels.load(name, "float64") is not None, name
    return request.param
