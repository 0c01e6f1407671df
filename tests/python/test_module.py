"""Tests of the Python module colora (docs/python.md), run by ctest as
`python3 -m pytest tests/python` with the build tree's python/ directory on
PYTHONPATH and the colora program in COLORA_PROGRAM. Seeds are fixed; set
COLORA_TEST_SEED to run them with another one (it is printed on failure)."""

import importlib.util
import os
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

import colora

SEED = int(os.environ.get("COLORA_TEST_SEED", "7"))
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def small_problem(dtype="float64", sigma=1e-3, seed=SEED, **kw):
    opts = dict(tasks=40, p=30, q=20, rank=3, samples=40, test_samples=50, sigma=sigma, seed=seed)
    opts.update(kw)
    return colora.generate(dtype=dtype, **opts)


def rel_diff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def test_defaults_are_the_cpp_defaults():
    cpp = colora._core.default_options()
    py = colora.CoLoRA().get_params()
    for key, value in py.items():
        if key == "rank":
            continue
        assert key in cpp, key
        assert cpp[key] == value, (key, cpp[key], value)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-2), ("float32", 2e-2)])
def test_recovers_the_planted_truth(dtype, tol):
    pb = small_problem(dtype)
    # float32 cannot meet the double default tolerance (1e-10) on the objective's relative change.
    m = colora.CoLoRA(rank=3, tol=1e-10 if dtype == "float64" else 1e-5)
    m.fit(pb.Xs, pb.Ys, test=(pb.Xs_test, pb.Ys_test), truth=pb.truth)
    assert m.status_ == "Success", (SEED, m.status_, m.stop_reason_)
    assert m.A_.dtype == np.dtype(dtype) and m.cores_[0].dtype == np.dtype(dtype)
    assert m.A_.shape == (3, 30) and m.B_.shape == (20, 3) and len(m.cores_) == 40
    assert m.metrics_["dist_a"] < tol and m.metrics_["dist_b"] < tol, (SEED, m.metrics_)
    assert m.metrics_["mean_rel_err"] < tol, (SEED, m.metrics_["mean_rel_err"])
    # The metrics agree with recovery_metrics() on the fitted factors.
    again = colora.recovery_metrics(pb.truth, m.A_, m.B_, m.cores_)
    assert again["mean_rel_err"] == pytest.approx(m.metrics_["mean_rel_err"], rel=1e-5)
    # History: one record per iteration plus the initialization, truth and test errors filled in.
    h = m.history_
    assert len(h["iteration"]) == m.n_iter_ + 1
    assert np.all(np.isfinite(h["dist_a"])) and np.all(np.isfinite(h["test_mse"]))
    # Held-out fit: R^2 close to 1 at this noise level, and the test MSE near the noise floor.
    assert m.score(pb.Xs_test, pb.Ys_test) > 0.99
    floor = colora.oracle_core_test_mse(1e-3, 20, 3, 40)
    assert m.mse(pb.Xs_test, pb.Ys_test) < 3 * floor


def test_same_numbers_as_the_cpp_program(tmp_path):
    program = os.environ.get("COLORA_PROGRAM")
    if not program:
        pytest.skip("COLORA_PROGRAM is not set (ctest sets it)")
    pb = small_problem(sigma=0.05)
    data = tmp_path / "data"
    data.mkdir()
    for i, (X, Y) in enumerate(zip(pb.Xs, pb.Ys)):
        np.save(data / ("X_%d.npy" % i), X)
        np.save(data / ("Y_%d.npy" % i), Y)
    out = tmp_path / "out"
    subprocess.run([program, "fit", "--data", str(data), "--rank", "3", "--iters", "100", "--tol", "1e-10",
                    "--seed", "0", "--out", str(out)], check=True, capture_output=True)
    m = colora.CoLoRA(rank=3, max_iterations=100, tol=1e-10, seed=0).fit(pb.Xs, pb.Ys)
    assert rel_diff(m.A_, np.load(out / "A.npy")) < 1e-12
    assert rel_diff(m.B_, np.load(out / "B.npy")) < 1e-12
    for i in range(len(pb.Xs)):
        assert rel_diff(m.cores_[i], np.load(out / ("S_%d.npy" % i))) < 1e-12, i


def test_every_memory_layout_gives_the_same_fit():
    pb = small_problem(sigma=0.05)
    ref = colora.CoLoRA(rank=3).fit(pb.Xs, pb.Ys)
    layouts = {
        "fortran": [np.asfortranarray(X) for X in pb.Xs],
        "c": [np.ascontiguousarray(X) for X in pb.Xs],
        "strided": [np.repeat(X, 2, axis=0)[::2] for X in pb.Xs],
        "transposed view": [np.ascontiguousarray(X.T).T for X in pb.Xs],
        "reversed rows": [np.ascontiguousarray(X[::-1])[::-1] for X in pb.Xs],
        "big-endian": [X.astype(">f8") for X in pb.Xs],
        "tuple": tuple(pb.Xs),
    }
    for name, Xs in layouts.items():
        m = colora.CoLoRA(rank=3).fit(Xs, pb.Ys)
        assert np.array_equal(m.A_, ref.A_), name
        assert all(np.array_equal(a, b) for a, b in zip(m.cores_, ref.cores_)), name


def test_precision_follows_the_data():
    pb = small_problem("float32")
    assert colora.CoLoRA(rank=3).fit(pb.Xs, pb.Ys).A_.dtype == np.float32
    mixed = [pb.Ys[0].astype(np.float64)] + list(pb.Ys[1:])
    assert colora.CoLoRA(rank=3).fit(pb.Xs, mixed).A_.dtype == np.float64
    ints = [np.rint(X * 10).astype(np.int32) for X in pb.Xs]
    assert colora.CoLoRA(rank=3).fit(ints, pb.Ys).A_.dtype == np.float64


def test_results_do_not_depend_on_the_thread_count():
    pb = small_problem(sigma=0.05, tasks=60)
    one = colora.CoLoRA(rank=3, threads=1).fit(pb.Xs, pb.Ys)
    two = colora.CoLoRA(rank=3, threads=2).fit(pb.Xs, pb.Ys)
    assert np.array_equal(one.A_, two.A_) and np.array_equal(one.B_, two.B_)
    assert all(np.array_equal(a, b) for a, b in zip(one.cores_, two.cores_))
    assert np.array_equal(one.history_["objective"], two.history_["objective"])


def test_bad_input_raises_the_library_message():
    pb = small_problem()
    Xs = list(pb.Xs)
    Xs[3] = Xs[3][:, :5]
    with pytest.raises(ValueError, match=r"task 3: X has 5 columns but task 0 has p = 30"):
        colora.CoLoRA(rank=3).fit(Xs, pb.Ys)
    Ys = list(pb.Ys)
    Ys[1] = Ys[1].copy()
    Ys[1][2, 4] = np.nan
    with pytest.raises(ValueError, match=r"task 1: Y"):
        colora.CoLoRA(rank=3).fit(pb.Xs, Ys)
    with pytest.raises(ValueError, match=r"rank must be >= 1, got 0"):
        colora.CoLoRA(rank=0).fit(pb.Xs, pb.Ys)
    with pytest.raises(ValueError, match=r"unknown A-step solver 'bogus'"):
        colora.CoLoRA(rank=3, a_step="bogus").fit(pb.Xs, pb.Ys)
    with pytest.raises(ValueError, match=r"40 input arrays \(Xs\) but 39 output arrays"):
        colora.CoLoRA(rank=3).fit(pb.Xs, pb.Ys[:-1])
    with pytest.raises(ValueError, match=r"Xs\[2\]: expected a 2-D array, got 3 dimensions"):
        colora.CoLoRA(rank=3).fit(pb.Xs[:2] + [pb.Xs[2][None]] + pb.Xs[3:], pb.Ys)
    with pytest.raises(TypeError, match=r"Xs\[1\]: element type complex128 is not supported"):
        colora.CoLoRA(rank=3).fit([pb.Xs[0], pb.Xs[1].astype(complex)], pb.Ys[:2])
    with pytest.raises(TypeError, match=r"Xs: expected a list of per-task arrays, got ndarray"):
        colora.CoLoRA(rank=3).fit(pb.Xs[0], pb.Ys)
    with pytest.raises(TypeError, match=r"Xs\[0\]: expected an array, got str"):
        colora.CoLoRA(rank=3).fit(["abc"], pb.Ys[:1])
    with pytest.raises(TypeError, match=r"option 'rank' must be an int, got str"):
        colora.CoLoRA(rank="3").fit(pb.Xs, pb.Ys)
    with pytest.raises(TypeError, match=r"unexpected option 'foo'"):
        colora.fit_baseline("colora", pb.Xs, pb.Ys, rank=3, foo=1)
    with pytest.raises(ValueError, match=r"unknown method 'nope'"):
        colora.fit_baseline("nope", pb.Xs, pb.Ys, rank=3)
    with pytest.raises(ValueError, match=r"invalid parameter 'ranks'"):
        colora.CoLoRA().set_params(ranks=3)
    with pytest.raises(RuntimeError, match=r"not fitted"):
        colora.CoLoRA(rank=3).predict(pb.Xs[0], 0)
    m = colora.CoLoRA(rank=3).fit(pb.Xs, pb.Ys)
    with pytest.raises(IndexError, match=r"task 40 is out of range \[0, 40\)"):
        m.predict(pb.Xs[0], 40)
    with pytest.raises(ValueError, match=r"task 0: X has shape \(40, 29\) but the model has p = 30"):
        m.predict(pb.Xs[0][:, 1:], 0)
    with pytest.raises(ValueError, match=r"rank must be in \[1, p = 30\], got 31"):
        colora.generate(p=30, rank=31)


def test_every_baseline_runs_by_name():
    pb = small_problem(sigma=0.05)
    for name in colora.baseline_names():
        rank = None if name in ("local", "global") else 3
        res = colora.fit_baseline(name, pb.Xs, pb.Ys, rank=rank, truth=pb.truth, max_iterations=30)
        assert res.method == name
        assert res.status in ("Success", "MaxIterations"), (name, res.status)
        assert res.num_tasks == 40
        Y = res.predict(pb.Xs_test[1], 1)
        assert Y.shape == (50, 20)
        assert np.allclose(Y, pb.Xs_test[1] @ res.weight(1).T)
        assert np.isfinite(res.metrics["mean_rel_err"]), name
    # CoLoRA through fit_baseline is the estimator's fit.
    res = colora.fit_baseline("colora", pb.Xs, pb.Ys, rank=3)
    m = colora.CoLoRA(rank=3).fit(pb.Xs, pb.Ys)
    assert np.array_equal(res.A, m.A_) and np.array_equal(res.personal["S"][5], m.cores_[5])


def test_generator_is_deterministic_and_typed():
    a = small_problem(seed=3)
    b = small_problem(seed=3)
    c = small_problem(seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.Xs, b.Xs))
    assert not np.array_equal(a.Xs[0], c.Xs[0])
    f = small_problem("float32", seed=3)
    assert f.Xs[0].dtype == np.float32 and f.truth["A"].dtype == np.float32
    # The planted truth explains the data up to the noise.
    t = a.truth
    W = t["B_tasks"][2] @ t["cores"][2] @ t["A_tasks"][2]
    resid = a.Ys[2] - a.Xs[2] @ W.T
    assert abs(resid.std() - 1e-3) < 2e-4
    # Recovery metrics of the truth itself are zero.
    m = colora.recovery_metrics(t, t["A"], t["B"], t["cores"])
    assert m["mean_rel_err"] < 1e-12 and m["dist_a"] < 1e-7


def test_oracle_floors_are_the_closed_forms():
    assert colora.oracle_core_floor(0.1, 3, 40) == pytest.approx(0.01 * 9 / 36)
    assert colora.oracle_head_floor(0.1, 20, 3, 40) == pytest.approx(0.01 * 60 / 36)
    assert colora.oracle_free_floor(0.1, 20, 30, 40) == pytest.approx(0.01 * 600 / 9)
    assert colora.oracle_core_floor(0.1, 3, 4) == float("inf")


def test_adapt_fits_a_new_task_core():
    pb = small_problem(sigma=0.05)
    m = colora.CoLoRA(rank=3).fit(pb.Xs, pb.Ys)
    # The fit ends with an S-step, so adapting task 5's own data gives its core back.
    idx = m.adapt(pb.Xs[5], pb.Ys[5])
    assert idx == 40 and len(m.cores_) == 41
    assert rel_diff(m.cores_[idx], m.cores_[5]) < 1e-10
    assert np.allclose(m.predict(pb.Xs_test[5], idx), m.predict(pb.Xs_test[5], 5))
    # A genuinely new task of the same family, from 10 samples.
    new = small_problem(sigma=0.05, seed=SEED + 100)
    held = colora.CoLoRA(rank=3).fit(pb.Xs[1:], pb.Ys[1:])
    j = held.adapt(pb.Xs[0][:10], pb.Ys[0][:10], ridge=1e-6)
    err = np.mean((held.predict(pb.Xs_test[0], j) - pb.Ys_test[0]) ** 2)
    assert err < 10 * 0.05 ** 2, err
    with pytest.raises(ValueError, match=r"X has 29 columns but A has p = 30"):
        held.adapt(pb.Xs[0][:, 1:], pb.Ys[0])
    del new


def test_params_round_trip_and_clone():
    m = colora.CoLoRA(rank=5, a_step="exact", lam=0.1)
    p = m.get_params()
    assert p["rank"] == 5 and p["a_step"] == "exact" and p["lam"] == 0.1
    clone = colora.CoLoRA(**p)
    assert clone.get_params() == p
    assert m.set_params(rank=2) is m and m.rank == 2
    assert repr(colora.CoLoRA(rank=2, tol=1e-8)) == "CoLoRA(rank=2, tol=1e-08)"


def test_one_dimensional_outputs():
    rng = np.random.default_rng(SEED)
    A = rng.standard_normal((2, 12))
    Xs = [rng.standard_normal((30, 12)) for _ in range(20)]
    heads = [rng.standard_normal(2) for _ in range(20)]
    Ys = [X @ A.T @ h for X, h in zip(Xs, heads)]
    m = colora.CoLoRA(rank=2).fit(Xs, Ys)
    y = m.predict(Xs[0], 0)
    assert y.shape == (30,)
    assert rel_diff(y, Ys[0]) < 1e-6


def test_the_gil_is_released_during_a_fit():
    pb = colora.generate(tasks=200, p=64, q=64, rank=8, samples=64, test_samples=0, seed=SEED)
    window = {}

    def work():
        window["start"] = time.perf_counter()
        colora.CoLoRA(rank=8, a_step="gd", gd_step=1e-3, max_iterations=150, tol=0).fit(pb.Xs, pb.Ys)
        window["end"] = time.perf_counter()

    t = threading.Thread(target=work)
    ticks = []
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    assert window["end"] - window["start"] > 0.05
    inside = [x for x in ticks if window["start"] + 0.01 < x < window["end"] - 0.01]
    # With the GIL held for the whole fit this thread could not have run at all.
    assert len(inside) > 5, (len(inside), window)


def test_ctrl_c_stops_a_long_fit():
    pb = colora.generate(tasks=200, p=64, q=64, rank=8, samples=64, test_samples=0, seed=SEED)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # 20000 iterations would take about a minute; the interrupt comes after 0.3 s.
            colora.CoLoRA(rank=8, a_step="gd", gd_step=1e-3, max_iterations=20000, tol=0).fit(pb.Xs, pb.Ys)
    finally:
        timer.cancel()
    # The module works normally afterwards.
    m = colora.CoLoRA(rank=8, max_iterations=3).fit(pb.Xs[:10], pb.Ys[:10])
    assert m.n_iter_ == 3


def python_blocks(path):
    with open(path) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


@pytest.mark.parametrize("page", ["README.md", "docs/python.md"])
def test_the_docs_examples_run_as_written(page):
    blocks = python_blocks(os.path.join(ROOT, page))
    assert blocks, page + " has no python code block"
    scope = {"__name__": "__docs__"}  # blocks of a page run in order, sharing their names
    for code in blocks:
        if "from peft import" in code and importlib.util.find_spec("peft") is None:
            continue  # PEFT is not a Debian package; the export tests check the same with PyTorch
        exec(compile(code, page, "exec"), scope)


def read_safetensors(path):
    """A reader written from the format's public description: u64 little-endian
    header length N, N bytes of JSON, then the raw little-endian row-major data."""
    import json
    import struct
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        dtype = {"F32": "<f4", "F64": "<f8"}[t["dtype"]]
        out[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype=dtype).reshape(t["shape"])
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_peft_export_of_a_fit_predicts_like_the_model(tmp_path, dtype):
    import json
    pb = small_problem(dtype, sigma=0.05, random_base=True)
    m = colora.CoLoRA(rank=3, tol=1e-5).fit(pb.Xs, pb.Ys, W0=pb.W0)
    m.export_peft(tmp_path / "task3", task=3, module="proj")
    cfg = json.loads((tmp_path / "task3" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 3 and cfg["lora_alpha"] == 3
    assert cfg["target_modules"] == ["proj"]
    t = read_safetensors(tmp_path / "task3" / "adapter_model.safetensors")
    A = t["base_model.model.proj.lora_A.weight"]
    B = t["base_model.model.proj.lora_B.weight"]
    assert A.shape == (3, 30) and B.shape == (20, 3) and A.dtype == np.dtype(dtype)
    X = pb.Xs_test[3]
    want = m.predict(X, 3)
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert rel_diff(X @ (pb.W0 + B @ A).T, want) < tol
    # The module's reader gives the same pair back, with PEFT's scaling 1.
    back = colora.read_peft_adapter(tmp_path / "task3", dtype=dtype)
    assert back["r"] == 3 and len(back["modules"]) == 1
    name, A2, B2, scaling = back["modules"][0]
    assert name == "proj" and scaling == 1.0
    assert np.array_equal(A2, A) and np.array_equal(B2, B)
    # PyTorch: nn.Linear with weight W0 + lora_B @ lora_A reproduces colora's prediction.
    torch = pytest.importorskip("torch")
    tdt = torch.float32 if dtype == "float32" else torch.float64
    lin = torch.nn.Linear(30, 20, bias=False).to(tdt)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(pb.W0 + B @ A)))
        got = lin(torch.from_numpy(np.ascontiguousarray(X))).numpy()
    assert np.max(np.abs(got - want)) <= (1e-6 if dtype == "float32" else 1e-12) * max(1.0, np.max(np.abs(want)))


def test_peft_export_of_every_baseline(tmp_path):
    pb = small_problem(sigma=0.05)
    for name in ["local", "fedrep", "global-lora"]:
        res = colora.fit_baseline(name, pb.Xs, pb.Ys, rank=None if name == "local" else 3, max_iterations=20)
        res.export_peft(tmp_path / name, task=2)
        back = colora.read_peft_adapter(tmp_path / name)
        _, A, B, s = back["modules"][0]
        assert rel_diff(s * B @ A, res.weight(2)) < 1e-12, name
    with pytest.raises(ValueError, match=r"module"):
        colora.write_peft_adapter(tmp_path / "bad", [("a b", np.eye(2), np.eye(2))])
    with pytest.raises(RuntimeError, match=r"adapter_config.json|adapter_model.safetensors"):
        colora.read_peft_adapter(tmp_path / "missing")
