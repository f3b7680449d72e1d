"""Benchmark scripts import their shared helpers as `results` (benchmarks/ is their folder);
every test can import tests/needs.py (third-party packages: skip locally, fail in CI)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu(n)`` need n CUDA devices. Without them they are deselected, not
    skipped: a CPU machine (CI's) cannot run them, and each has a CPU counterpart that
    runs everywhere (bf16/LoRA stages on CPU in test_hardware_lora.py, FSDP's body on
    CPU/gloo in test_ddp.py). The report header says how many devices were found."""
    gpu = [it for it in items if it.get_closest_marker("gpu")]
    if not gpu:
        return
    have = _cuda_devices()
    drop = [it for it in gpu if have < int(it.get_closest_marker("gpu").args[0])]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [it for it in items if it not in drop]


def pytest_report_header(config):
    return (
        f"CUDA devices: {_cuda_devices()} (tests marked gpu(n) run with n or more, "
        "else they are deselected)"
    )
