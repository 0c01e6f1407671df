#!/usr/bin/python3
"""What fitting through the Python module costs over the C++ call (issue 17).

  PYTHONPATH=build/test/python bench/python_overhead.py [--reps 30] [--threads 0]

For each problem (the default `colora recovery` problem, (k, n_i, p, q, r) =
(100, 24, 64, 64, 4), sigma 0.1, seed 1; and a larger one, (1000, 64, 256,
256, 8)), in one process, back to back: `colora.CoLoRA(rank=r).fit(Xs, Ys)`
timed end to end from Python (lists of C-ordered float64 arrays, as a NumPy
user holds them: the conversion into the solver's column-major storage, the
fit and the conversion of the results), against `solver_seconds_`, the wall
time of the C++ fit call itself (colora::fit_baseline("colora", problem,
options), what a C++ user calls) measured inside the same call. Prints the
medians over --reps fits of both and of the time outside the C++ fit (end to
end minus C++, fit by fit: paired, so the fits' own variation cancels), and
that time as a fraction of the C++ fit.
"""
import argparse
import os
import statistics
import time

import numpy as np

import colora

SIZES = {
    "default recovery (100, 24, 64, 64, 4)": dict(tasks=100, samples=24, p=64, q=64, rank=4),
    "large (1000, 64, 256, 256, 8)": dict(tasks=1000, samples=64, p=256, q=256, rank=8),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--large-reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    print("colora %s, SIMD %s, load average %.2f, threads %d (0 = all)"
          % (colora.__version__, colora._core.simd, os.getloadavg()[0], a.threads))
    for name, size in SIZES.items():
        pb = colora.generate(test_samples=0, sigma=0.1, seed=1, **size)
        Xs = [np.ascontiguousarray(X) for X in pb.Xs]
        Ys = [np.ascontiguousarray(Y) for Y in pb.Ys]
        reps = a.reps if size["tasks"] <= 100 else a.large_reps
        total, inner, extra, iters = [], [], [], set()
        m = colora.CoLoRA(rank=size["rank"], threads=a.threads)
        m.fit(Xs, Ys)  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            m.fit(Xs, Ys)
            total.append(time.perf_counter() - t0)
            inner.append(m.solver_seconds_)
            extra.append(total[-1] - m.solver_seconds_)
            iters.add(m.n_iter_)
        t, c, e = statistics.median(total), statistics.median(inner), statistics.median(extra)
        data_mb = sum(X.nbytes + Y.nbytes for X, Y in zip(Xs, Ys)) / 1e6
        print("%s: %d fits, %s iterations, data %.1f MB: Python end to end %.2f ms, C++ fit %.2f ms, "
              "time outside the C++ fit %.2f ms = %+.1f%% of it" % (name, reps, sorted(iters), data_mb, 1e3 * t,
                                                                    1e3 * c, 1e3 * e, 100 * e / c))


if __name__ == "__main__":
    main()
