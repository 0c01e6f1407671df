"""The PEFT export read by an independent reader and checked against PyTorch.

The fixture program (tests/peft_fixture.cpp, CMake target colora_peft_fixture)
writes user 1's PEFT directory of a CoLoRA linear layer 24 -> 16 (rank 4), the
base weights, an input and colora's output for that user. This test reads
adapter_model.safetensors with a reader written here from the format's public
description (8-byte little-endian header length, JSON header, raw
little-endian row-major data) -- no colora code -- and checks that
W0 + lora_B @ lora_A reproduces colora's forward pass, in NumPy and in a
torch.nn.Linear.

Run: COLORA_PEFT_FIXTURE=build/tests/colora_peft_fixture python3 -m pytest tests/python/test_peft_torch.py
"""

import json
import os
import struct
import subprocess

import numpy as np
import pytest

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
PREFIX = "base_model.model."


def read_safetensors(path):
    """{name: ndarray} and metadata of a safetensors file, from the public format description."""
    with open(path, "rb") as f:
        raw = f.read()
    assert len(raw) >= 8
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw)
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    covered = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, end = info["data_offsets"]
        assert begin == covered, "tensors must tile the data section"
        dtype = DTYPES[info["dtype"]]
        shape = tuple(info["shape"])
        assert end - begin == int(np.prod(shape)) * dtype.itemsize
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
        covered = end
    assert covered == len(data)
    return tensors, metadata


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    exe = os.environ.get("COLORA_PEFT_FIXTURE")
    if not exe:
        pytest.skip("COLORA_PEFT_FIXTURE is not set (path of the colora_peft_fixture program)")
    out = tmp_path_factory.mktemp("peft")
    subprocess.run([exe, str(out), "--seed", "3"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def adapter(fixture_dir):
    d = fixture_dir / "peft_user1"
    with open(d / "adapter_config.json", encoding="utf-8") as f:
        config = json.load(f)
    tensors, metadata = read_safetensors(d / "adapter_model.safetensors")
    return config, tensors, metadata


def load(fixture_dir, name):
    return np.load(fixture_dir / name)


def test_config_fields(adapter):
    config, tensors, metadata = adapter
    assert config["peft_type"] == "LORA"
    assert config["r"] == 4
    assert config["lora_alpha"] == config["r"]  # PEFT's scaling alpha / r is 1
    assert config["target_modules"] == ["linear"]
    assert config["bias"] == "none"
    assert config["fan_in_fan_out"] is False
    assert config["use_rslora"] is False
    assert config["inference_mode"] is True
    assert metadata.get("format") == "pt"
    assert sorted(tensors) == [PREFIX + "linear.lora_A.weight", PREFIX + "linear.lora_B.weight"]


def test_shapes_and_dtype(adapter):
    _, tensors, _ = adapter
    a = tensors[PREFIX + "linear.lora_A.weight"]
    b = tensors[PREFIX + "linear.lora_B.weight"]
    assert a.shape == (4, 24) and b.shape == (16, 4)
    assert a.dtype == np.float32 and b.dtype == np.float32


def test_numpy_reproduces_colora(fixture_dir, adapter):
    _, tensors, _ = adapter
    a = tensors[PREFIX + "linear.lora_A.weight"].astype(np.float64)
    b = tensors[PREFIX + "linear.lora_B.weight"].astype(np.float64)
    w0 = load(fixture_dir, "base_weight.npy").astype(np.float64)
    bias = load(fixture_dir, "base_bias.npy").astype(np.float64)
    x = load(fixture_dir, "x.npy").astype(np.float64)
    y = load(fixture_dir, "y_user1.npy")
    assert w0.shape == (16, 24) and bias.shape == (16,) and x.shape == (8, 24) and y.shape == (8, 16)
    assert np.abs(b @ a).max() > 1e-2  # a non-trivial update
    got = x @ (w0 + b @ a).T + bias
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-5)


def test_torch_linear_reproduces_colora(fixture_dir, adapter):
    torch = pytest.importorskip("torch")
    _, tensors, _ = adapter
    a = torch.from_numpy(tensors[PREFIX + "linear.lora_A.weight"].copy())
    b = torch.from_numpy(tensors[PREFIX + "linear.lora_B.weight"].copy())
    w0 = torch.from_numpy(load(fixture_dir, "base_weight.npy"))
    bias = torch.from_numpy(load(fixture_dir, "base_bias.npy"))
    x = torch.from_numpy(load(fixture_dir, "x.npy"))
    y = load(fixture_dir, "y_user1.npy")
    layer = torch.nn.Linear(24, 16)
    with torch.no_grad():
        layer.weight.copy_(w0 + b @ a)
        layer.bias.copy_(bias)
        out = layer(x).numpy()
    assert out.dtype == np.float32
    # float32 throughout: colora computes ((x A^T) S^T) B^T, torch x (W0 + B' A)^T.
    scale = np.abs(y).max()
    np.testing.assert_allclose(out, y, rtol=1e-6, atol=1e-6 * max(scale, 1.0))
