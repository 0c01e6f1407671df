#!/usr/bin/python3
"""PyTorch peer of bench_nn's CoLoRA multi-task training steps (bench/compare, issue 14).

The same step as bench/bench_nn.cpp (colora::nn::Trainer, Joint schedule): k = 8 tasks,
rank 8, every task draws its own minibatch (per-task random permutation of 4 batches of
examples, one epoch = 4 steps), forward + backward of all tasks, then one AdamW update of
the shared factors A, B (gradient = sum over tasks of the per-task gradients) and of each
task's core S_i (its own task's gradient). Loss: per task MSE (mean over the batch and the
outputs), summed over tasks. AdamW: lr 1e-4, betas (0.9, 0.999), eps 1e-8, no weight
decay, for both groups. Base weights W0, b0 and LayerNorm gamma/beta frozen; B = 0,
A with orthonormal rows, S_i = I at start (scale alpha/r = 1); GELU exact (erf).

  mlp          256 -> 256 -> 256 -> 256, GELU between, a CoLoRA adapter on every Linear,
               batch 64 per task;
  transformer  input projection 128 -> 128 (no adapter), one pre-LN block (d_model 128,
               4 heads, d_ff 512, T = 32, not causal) with adapters on attention q, v and
               both MLP projections, final LayerNorm, mean over T, head 128 -> 1 (no
               adapter), batch 16 sequences per task.

Written as a strong PyTorch user would: one module holds the frozen bases, the shared A/B
and a (k, r, r) tensor of cores per adapted Linear; all k tasks go through together as
(k, n, d) tensors: the base product is one GEMM over the k*n stacked rows (q, k, v fused
into one frozen 384 x 128 weight), the adapter path is (x A^T) then torch.bmm with the
cores then (.) B^T; attention is batched over (task, sequence, head) with bmm;
torch.optim.AdamW(foreach=True). The frozen input of the block needs no gradient, so
autograd skips dX of the q/k/v projections and of ln1 (bench_nn computes and discards it;
--input-grad makes the peer do that work too).

  torch_colora.py --model mlp|transformer --dtype float32|float64 --threads N
                  [--steps 30] [--warmup 5] [--jit] [--input-grad]

Prints one JSON object: model, dtype, threads, ms_per_step (median wall time of one step:
minibatch, forward, backward, optimizer), min/mean, parameter counts and FLOP counts.
"""
import os, sys  # noqa: E401


def _early(flag):  # OpenMP / OpenBLAS read their environment when torch loads: set it first
    vals = [b for a, b in zip(sys.argv, sys.argv[1:]) if a == flag]
    vals += [a.split("=", 1)[1] for a in sys.argv if a.startswith(flag + "=")]
    return vals[-1] if vals else None


if (_t := _early("--threads")) and int(_t) > 0:
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _t
# Debian's torch runs its element-wise work on libgomp threads and its GEMMs on OpenBLAS's own
# pthreads: with libgomp's default spin-waiting the idle OpenMP threads take the cores from the
# BLAS threads (measured: MLP float32 two threads 186 ms per step against 5 ms). Sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse, ctypes, json, re, statistics, time  # noqa: E401,E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

K, R = 8, 8


def tune_malloc():
    """glibc returns every freed block above 128 KiB (then above its adaptive threshold) to the
    kernel, so each step's fresh activations page-fault again; a PyTorch CPU user sets
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ (or preloads jemalloc): the same through mallopt."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


from peer_common import blas_info  # noqa: E402


def torch_config():
    """The lines of torch.__config__.show() / parallel_info() that say which kernels run."""
    keys = ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP", "TORCH_VERSION")
    text = torch.__config__.show()
    out = {k: m.group(1) for k in keys if (m := re.search(k + r"=([^,\s]+)", text))}
    if m := re.search(r"CPU capability usage: (\S+)", text):
        out["cpu_capability"] = m.group(1)
    if m := re.search(r"ATen parallel backend: (.+)", torch.__config__.parallel_info()):
        out["parallel_backend"] = m.group(1).strip()
    return out


def orthonormal_rows(r, p, gen, dtype):
    q, _ = torch.linalg.qr(torch.randn(p, r, generator=gen, dtype=torch.float64))
    return q.T.contiguous().to(dtype)


class CoLinear(torch.nn.Module):
    """y = x W0^T + b0 (+ ((x A^T) S_i^T) B^T for the rows of task i), x of shape (k, n, p)."""

    def __init__(self, p, q, r, gen, dtype):
        super().__init__()
        self.W0 = torch.nn.Parameter(torch.randn(q, p, generator=gen, dtype=dtype) / p ** 0.5, requires_grad=False)
        self.b0 = torch.nn.Parameter(torch.zeros(q, dtype=dtype), requires_grad=False)
        self.r = r
        if r:
            self.A = torch.nn.Parameter(orthonormal_rows(r, p, gen, dtype))           # shared, r x p
            self.B = torch.nn.Parameter(torch.zeros(q, r, dtype=dtype))               # shared, q x r
            self.S = torch.nn.Parameter(torch.eye(r, dtype=dtype).repeat(K, 1, 1))    # personal, (k, r, r)

    def forward(self, x):
        k, n, p = x.shape
        x2 = x.reshape(k * n, p)
        y = torch.addmm(self.b0, x2, self.W0.t())                                     # one GEMM over all tasks
        if self.r:
            v = torch.bmm((x2 @ self.A.t()).view(k, n, self.r), self.S.transpose(1, 2))
            y = torch.addmm(y, v.view(k * n, self.r), self.B.t())
        return y.view(k, n, -1)


class Mlp(torch.nn.Module):
    def __init__(self, widths, r, gen, dtype):
        super().__init__()
        self.layers = torch.nn.ModuleList(CoLinear(a, b, r, gen, dtype) for a, b in zip(widths, widths[1:]))

    def forward(self, x):
        for i, l in enumerate(self.layers):
            x = l(x)
            if i + 1 < len(self.layers):
                x = F.gelu(x)
        return x


class Transformer(torch.nn.Module):
    def __init__(self, d, heads, dff, T, r, gen, dtype, input_grad=False):
        super().__init__()
        self.d, self.H, self.T, self.input_grad = d, heads, T, input_grad
        frozen = lambda t: torch.nn.Parameter(t, requires_grad=False)  # noqa: E731
        self.inp = CoLinear(d, d, 0, gen, dtype)
        self.ln1_w, self.ln1_b = frozen(torch.ones(d, dtype=dtype)), frozen(torch.zeros(d, dtype=dtype))
        # q, k, v bases fused (all frozen: no wasted weight gradient), adapters on q and v
        self.Wqkv = frozen(torch.randn(3 * d, d, generator=gen, dtype=dtype) / d ** 0.5)
        self.bqkv = frozen(torch.zeros(3 * d, dtype=dtype))
        self.aq, self.av = CoLinear(d, d, r, gen, dtype), CoLinear(d, d, r, gen, dtype)
        for m in (self.aq, self.av):  # only the adapters are used from these
            del m.W0, m.b0
        self.o = CoLinear(d, d, 0, gen, dtype)
        self.ln2_w, self.ln2_b = frozen(torch.ones(d, dtype=dtype)), frozen(torch.zeros(d, dtype=dtype))
        self.fc_in, self.fc_out = CoLinear(d, dff, r, gen, dtype), CoLinear(dff, d, r, gen, dtype)
        self.lnf_w, self.lnf_b = frozen(torch.ones(d, dtype=dtype)), frozen(torch.zeros(d, dtype=dtype))
        self.head = CoLinear(d, 1, 0, gen, dtype)

    @staticmethod
    def adapter(m, x2, k, n):
        v = torch.bmm((x2 @ m.A.t()).view(k, n, m.r), m.S.transpose(1, 2))
        return v.view(k * n, m.r) @ m.B.t()

    def forward(self, x):
        k, n, _ = x.shape                    # n = batch * T rows per task
        d, H, T = self.d, self.H, self.T
        b, dh = n // T, d // H
        x0 = self.inp(x)
        if self.input_grad:
            x0.requires_grad_()
        x0 = x0.view(k * n, d)
        h1 = F.layer_norm(x0, (d,), self.ln1_w, self.ln1_b, 1e-5)
        qkv = torch.addmm(self.bqkv, h1, self.Wqkv.t())
        q, kk, v = qkv.split(d, dim=1)
        q = q + self.adapter(self.aq, h1, k, n)
        v = v + self.adapter(self.av, h1, k, n)
        heads = lambda t: t.reshape(k * b, T, H, dh).transpose(1, 2).reshape(k * b * H, T, dh)  # noqa: E731
        q, kk, v = heads(q), heads(kk), heads(v)
        p = torch.softmax(torch.bmm(q, kk.transpose(1, 2)) * dh ** -0.5, dim=-1)
        o = torch.bmm(p, v).view(k * b, H, T, dh).transpose(1, 2).reshape(k, n, d)
        x1 = x0 + self.o(o).view(k * n, d)
        h2 = F.layer_norm(x1, (d,), self.ln2_w, self.ln2_b, 1e-5).view(k, n, d)
        y = x1 + self.fc_out(F.gelu(self.fc_in(h2))).view(k * n, d)
        f = F.layer_norm(y, (d,), self.lnf_w, self.lnf_b, 1e-5)
        pooled = f.view(k, b, T, d).mean(dim=2)
        return self.head(pooled)             # (k, b, 1)


def linear_flops(n, p, q, r, need_dx):
    """bench_nn's count: dense products of one Linear, forward and backward."""
    f = 2 * n * p * q + (2 * n * q * p if need_dx else 0)
    if r:
        f += 2 * n * p * r + 2 * n * r * q + 4 * n * q * r + 2 * n * r * p + 6 * n * r * r
        f += 2 * n * r * p if need_dx else 0
    return f


def flops(model, width, batch, d, heads, T, dff, input_grad):
    """(bench_nn's count, the products this peer performs), per step, all tasks."""
    if model == "mlp":
        f = sum(linear_flops(batch, width, width, R, l > 0) for l in range(3)) * K
        return f, f
    n = batch * T
    att = 12 * batch * heads * T * T * (d // heads)
    rest = linear_flops(n, d, d, 0, True) + linear_flops(n, d, dff, R, True) + linear_flops(n, dff, d, R, True) \
        + att + linear_flops(batch, d, 1, 0, True) + linear_flops(n, d, d, 0, False)
    colora = rest + 2 * linear_flops(n, d, d, R, True) + linear_flops(n, d, d, 0, True)
    peer = rest + 2 * linear_flops(n, d, d, R, input_grad) + linear_flops(n, d, d, 0, input_grad)
    return K * colora, K * peer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("mlp", "transformer"), default="mlp")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--threads", type=int, default=1, help="intra-op (OpenMP) and OpenBLAS threads")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--jit", action="store_true", help="torch.jit.trace the forward (default: eager)")
    ap.add_argument("--input-grad", action="store_true",
                    help="transformer: also backpropagate into the block input, as bench_nn does")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plain-malloc", action="store_true", help="keep glibc's default malloc thresholds")
    a = ap.parse_args()
    malloc_tuned = False if a.plain_malloc else tune_malloc()
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    gen = torch.Generator().manual_seed(a.seed)
    width, d, heads, T, dff = 256, 128, 4, 32, 512
    if a.model == "mlp":
        batch, rows = 64, 1
        net = Mlp([width] * 4, R, gen, dtype)
        X = torch.randn(K, 4 * batch, width, generator=gen, dtype=dtype)
        Y = torch.randn(K, 4 * batch, width, generator=gen, dtype=dtype)
    else:
        batch, rows = 16, T
        net = Transformer(d, heads, dff, T, R, gen, dtype, a.input_grad)
        X = torch.randn(K, 4 * batch, T, d, generator=gen, dtype=dtype)
        Y = torch.randn(K, 4 * batch, 1, generator=gen, dtype=dtype)
    n_ex = X.shape[1]
    per_epoch = n_ex // batch
    shared = [p for n, p in net.named_parameters() if p.requires_grad and not n.endswith(".S")]
    personal = [p for n, p in net.named_parameters() if p.requires_grad and n.endswith(".S")]
    opt = torch.optim.AdamW([{"params": shared}, {"params": personal}], lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0, foreach=True)
    fwd = net
    if a.jit:
        fwd = torch.jit.trace(net, X[:, :batch].reshape(K, batch * rows, -1), check_trace=False)
    tasks = torch.arange(K)[:, None]
    state = {"step": 0, "perm": None}

    def step():
        pos = state["step"] % per_epoch
        if pos == 0:  # a fresh permutation of each task's examples every epoch
            state["perm"] = torch.argsort(torch.rand(K, n_ex, generator=gen), dim=1)
        idx = state["perm"][:, pos * batch:(pos + 1) * batch]
        xb = X[tasks, idx].reshape(K, batch * rows, -1)
        yb = Y[tasks, idx]
        pred = fwd(xb)
        # per task mean squared error, summed over tasks
        loss = (pred - yb).square().sum() * (1.0 / (batch * yb.shape[-1]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        return loss

    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = step()
        t1 = time.perf_counter()
        if i >= a.warmup:
            times.append(t1 - t0)
    if not torch.isfinite(loss):
        sys.exit("torch_colora: non-finite loss")
    f_colora, f_peer = flops(a.model, width, batch, d, heads, T, dff, a.input_grad)
    med = statistics.median(times)
    count = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    frozen = [p for p in net.parameters() if not p.requires_grad]
    out = {
        "peer": "torch", "torch": torch.__version__, "model": a.model, "dtype": a.dtype, "threads": a.threads,
        "torch_threads": torch.get_num_threads(), "jit": a.jit, "input_grad": a.input_grad,
        "malloc_tuned": malloc_tuned, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "tasks": K, "rank": R, "batch": batch, "steps": a.steps, "warmup": a.warmup,
        "ms_per_step": med * 1e3, "ms_min": min(times) * 1e3, "ms_mean": statistics.fmean(times) * 1e3,
        "flops_bench_nn_count": f_colora, "flops_peer": f_peer, "gflops_peer": f_peer / med * 1e-9,
        "params": {"frozen": count(frozen), "shared": count(shared), "personal_per_task": count(personal) // K},
        "final_loss": float(loss), "blas": blas_info(), "config": torch_config(),
        "backend": {"mkl": torch.backends.mkl.is_available(), "mkldnn": torch.backends.mkldnn.is_available(),
                    "openmp": torch.backends.openmp.is_available()},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
