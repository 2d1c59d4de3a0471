"""Device choice, precision and the GPU memory budget (the CUDA cases run only on a GPU)."""
from __future__ import annotations

import pytest
import torch

from sidepath.core.errors import ConfigError
from sidepath.models import apply_memory_budget, gpu_memory_used, pick_device, resolve_precision
from sidepath.models.device import parse_quantity

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


def test_cpu_is_always_there():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(" CPU ") == torch.device("cpu")


@no_cuda
def test_auto_falls_back_to_cpu_without_a_gpu():
    assert pick_device("auto") == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_asking_for_a_missing_gpu_is_a_config_error_naming_the_fix(spec, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError) as err:
        pick_device(spec)
    text = str(err.value)
    assert "no CUDA device is visible" in text and "CUDA_VISIBLE_DEVICES=''" in text and "use device=auto" in text


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu:0", ""])
def test_malformed_device_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="use auto, cpu, cuda or cuda:N"):
        pick_device(spec)


def test_precision_is_fp32_on_cpu_whatever_was_asked():
    for p in ("auto", "fp32", "fp16", "bf16"):
        assert resolve_precision(p, torch.device("cpu")) == torch.float32
    with pytest.raises(ConfigError):
        resolve_precision("int8", torch.device("cpu"))


@pytest.mark.parametrize(("text", "expected"), [("16Gi", 16 * 2**30), ("500M", 500 * 10**6), ("1024", 1024),
                                                ("1.5Gi", 3 * 2**29), ("0", 0)])
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["16GB", "lots", "-1Gi", "500m"])
def test_parse_quantity_rejects(text):
    with pytest.raises(ConfigError, match="Kubernetes quantity"):
        parse_quantity(text)


def test_memory_budget_on_cpu_only_validates():
    assert apply_memory_budget("cpu", "16Gi") == 16 * 2**30
    assert gpu_memory_used("cpu") == 0
    with pytest.raises(ConfigError):
        apply_memory_budget("cpu", "sixteen")


@cuda
def test_cuda_device_numbers_are_checked():
    with pytest.raises(ConfigError, match="CUDA device"):
        pick_device(f"cuda:{torch.cuda.device_count()}")
    assert pick_device("auto") == torch.device("cuda", 0)
    assert resolve_precision("auto", torch.device("cuda", 0)) == torch.float16
    assert resolve_precision("auto", torch.device("cuda", 0), half_ok=False) == torch.float32


@cuda
def test_memory_budget_caps_the_allocator():
    device = torch.device("cuda", 0)
    total = torch.cuda.get_device_properties(device).total_memory
    apply_memory_budget(device, str(256 * 2**20))
    try:
        with pytest.raises(torch.cuda.OutOfMemoryError):
            torch.empty(512 * 2**20, dtype=torch.uint8, device=device)
        x = torch.empty(64 * 2**20, dtype=torch.uint8, device=device)
        assert gpu_memory_used(device) >= 64 * 2**20
        del x
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()
    assert total > 0
