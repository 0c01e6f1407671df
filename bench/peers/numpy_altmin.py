#!/usr/bin/python3
"""NumPy peer of colora's Solver for (M1) regression (bench/compare, issue 14).

The same algorithm as colora::Solver with default options (include/colora/regression/
solver.hpp, altmin.hpp, a_step.hpp): spectral initialization, then per iteration the
B-step (normal equations, thin QR re-gauge), the A-step by Kronecker-preconditioned CG
(warm start, stop at 1e-2 of the warm-start residual or 100 eps ||rhs||, <= 50
products), the A re-gauge and the S-step; objective sum_i ||R_i - X_i A^T S_i^T B^T||^2,
stop when |f_prev - f| <= tol f_prev. Tasks are stacked into one (k, n_max, p) array
(tasks with fewer samples are zero-padded: zero rows add nothing to any sum) and every
step is a batched matmul; the only Python loops are over iterations and CG products.
A strong user's reuse: Z = X A^T of the S-step serves the next B-step, R B of the
A-step serves the S-step, the objective comes from the S-step's r x r Grams (needs
B^T B = I, which the gauge keeps); for thin tasks the spectral sums come from n x n Grams.
Not covered: the exact rescaling of extreme data, lambda, weights, diagonal cores, q < r.

  numpy_altmin.py --generate 100,64,256,256,8 [--sigma 0.1 --seed 1] [--save DIR]
  numpy_altmin.py --data DIR --rank 8 [--threads 1] [--dtype float32] [--time-iteration 5]
"""
import os, sys  # noqa: E401


def _early(flag):  # the BLAS reads its environment when numpy loads it: set it first
    vals = [b for a, b in zip(sys.argv, sys.argv[1:]) if a == flag]
    vals += [a.split("=", 1)[1] for a in sys.argv if a.startswith(flag + "=")]
    return vals[-1] if vals else None


if (_t := _early("--threads")) and int(_t) > 0:
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _t
if _c := _early("--coretype"):
    os.environ["OPENBLAS_CORETYPE"] = _c

import argparse, ctypes, json, re, time  # noqa: E401,E402
import numpy as np  # noqa: E402


from peer_common import blas_info  # noqa: E402


T = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731


def solve_spd(G, Bm):
    """G X = Bm for SPD G (batched): Cholesky check, else the minimum-norm solution (as solve_spd)."""
    m, eps = G.shape[-1], np.finfo(G.dtype).eps
    try:
        Ld = np.diagonal(np.linalg.cholesky(G), axis1=-2, axis2=-1) ** 2
        if np.all(Ld.min(-1) > 16 * m * eps * np.abs(np.diagonal(G, axis1=-2, axis2=-1)).max(-1)):
            return np.linalg.solve(G, Bm)
    except np.linalg.LinAlgError:
        pass
    w, V = np.linalg.eigh(G)
    keep = w > np.abs(w).max(-1, keepdims=True) * m * eps
    inv = np.where(keep, 1 / np.where(keep, w, 1), 0)
    return V @ (inv[..., None] * (T(V) @ Bm))


def qr_pos(M):
    """Thin QR with diag(R) >= 0 (colora::thin_qr)."""
    Q, R = np.linalg.qr(M)
    s = np.where(np.diagonal(R) < 0, -1, 1).astype(M.dtype)
    return Q * s, R * s[:, None]


def top_eigvecs(M, r):
    return np.linalg.eigh(M)[1][:, ::-1][:, :r]


def fit(X, R, n, r, iters=100, tol=1e-10, init="spectral", seed=0, max_products=50, reduction=1e-2):
    """X (k, n_max, p), R (k, n_max, q) zero-padded, n (k,) samples. Returns A, B, S, history."""
    t0 = time.perf_counter()
    dt, eps = X.dtype, np.finfo(X.dtype).eps
    k, _, p = X.shape
    XT = T(X)
    nf = n.astype(dt)
    d = np.einsum("knp,knp->p", X, X) / nf.sum()  # pooled diagonal second moment (the D of the preconditioner)
    inv_d = np.where(d > 0, 1 / np.where(d > 0, d, 1), 1).astype(dt)
    rr = np.einsum("knq,knq->k", R, R, dtype=np.float64)  # ||R_i||^2: the zero adapter's loss
    cg_tol = 100 * float(eps)
    if init == "spectral":  # M_i = X_i^T R_i / n_i; A^T, B = top eigenvectors of sum M M^T, sum M^T M
        nm, q = X.shape[1], R.shape[2]
        if nm * (2 * nm * (p + q) + p * p + q * q) < p * q * (nm + p + q):  # thin tasks: the same sums via
            w2 = (1 / nf**2)[:, None, None]                                  # n x n Grams, fewer flops
            AA = np.tensordot(X, ((R @ T(R)) * w2) @ X, axes=([0, 1], [0, 1]))
            BB = np.tensordot(R, ((X @ XT) * w2) @ R, axes=([0, 1], [0, 1]))
        else:
            M = (XT @ R) / nf[:, None, None]
            AA, BB = np.tensordot(M, M, axes=([0, 2], [0, 2])), np.tensordot(M, M, axes=([0, 1], [0, 1]))
            del M
        A, B = top_eigvecs(AA, r).T, top_eigvecs(BB, r)
    else:  # Haar draws from numpy's generator (not colora's stream)
        rng = np.random.default_rng(seed)
        A = qr_pos(rng.standard_normal((p, r)))[0].T.astype(dt)
        B = qr_pos(rng.standard_normal((R.shape[2], r)))[0].astype(dt)
    A, B = np.ascontiguousarray(A), np.ascontiguousarray(B)

    def s_step(A, B, P):  # S_i^T = (Z^T Z)^-1 Z^T P, Z = X A^T, P = R B; objective from the r x r Grams
        Z = X @ A.T
        ZtZ, ZtP = T(Z) @ Z, T(Z) @ P
        S = T(solve_spd(ZtZ, ZtP))
        S64, G64 = S.astype(np.float64), ZtZ.astype(np.float64)
        f = rr - 2 * np.einsum("kab,kba->k", ZtP.astype(np.float64), S64) \
            + np.einsum("kab,kbc,kdc,da->k", S64, G64, S64, (B.T @ B).astype(np.float64), optimize=True)
        return Z, ZtZ, S, float(f.sum())

    Z, ZtZ, S, f = s_step(A, B, R @ B)
    hist = {"objective": [f], "seconds": [time.perf_counter() - t0], "iteration_seconds": [None], "products": [0]}
    status, f_prev, floor = "MaxIterations", f, rr.sum() * (1000 * float(eps)) ** 2
    for it in range(1, iters + 1):
        ti = time.perf_counter()
        # B-step: B^T = (sum Q^T Q)^-1 sum Q^T R, Q_i = Z_i S_i^T (Z from the last S-step: A is unchanged)
        Q = Z @ T(S)
        Bn = solve_spd((S @ ZtZ @ T(S)).sum(0), (T(Q) @ R).sum(0)).T
        B, Rb = qr_pos(Bn)
        S = Rb @ S
        # A-step: H(G) = sum_i X_i^T X_i G C_i = rhs, C_i = S_i^T B^T B S_i, rhs = sum_i X_i^T R_i B S_i
        C = T(S) @ (B.T @ B) @ S
        P = R @ B
        rhs = (XT @ (P @ S)).sum(0)
        H = lambda G: (XT @ ((X @ G) @ C)).sum(0)  # noqa: E731
        w, V = np.linalg.eigh(np.einsum("k,kab->ab", nf, C))  # Kronecker preconditioner C_bar (x) D
        top = np.abs(w).max()
        inv_c = (V * np.where(w > top * 1e3 * eps, 1 / w, 1 / top if top > 0 else 1)) @ V.T
        pre = lambda Rm: inv_d[:, None] * (Rm @ inv_c)  # noqa: E731
        G, products = A.T.copy(), 0
        bnorm = np.linalg.norm(rhs)
        if bnorm > 0:
            Rc = rhs - H(G)
            products = 1
            Zc = pre(Rc)
            Pc, rz, rnorm = Zc, np.vdot(Rc, Zc), np.linalg.norm(Rc)
            target = max(cg_tol * bnorm, reduction * rnorm)
            while rnorm > target and products < max_products:
                HP = H(Pc)
                products += 1
                pHp = np.vdot(Pc, HP)
                if not (pHp > 0 and np.isfinite(pHp)):
                    break
                alpha = rz / pHp
                G += alpha * Pc
                Rc -= alpha * HP
                Zc = pre(Rc)
                rz_new = np.vdot(Rc, Zc)
                Pc = Zc + (rz_new / rz) * Pc
                rz, rnorm = rz_new, np.linalg.norm(Rc)
                if not rz > 0:
                    break
        else:
            G[:] = 0
        Qa, Ra = qr_pos(G)
        A, S = np.ascontiguousarray(Qa.T), S @ Ra.T
        Z, ZtZ, S, f = s_step(A, B, P)
        now = time.perf_counter()
        for key, v in (("objective", f), ("seconds", now - t0), ("iteration_seconds", now - ti), ("products", products)):
            hist[key].append(v)
        if not np.isfinite(f) or abs(f_prev - f) <= tol * abs(f_prev) or f <= floor:
            status = "Success" if np.isfinite(f) else "NumericalIssue"
            break
        f_prev = f
    hist["status"], hist["iterations"] = status, len(hist["objective"]) - 1
    return A, B, S, hist


def dist(U, U_star):
    """sin of the largest principal angle between the column spaces (colora::subspace_distance)."""
    Q, Qs = np.linalg.qr(U.astype(np.float64))[0], np.linalg.qr(U_star.astype(np.float64))[0]
    return min(1.0, float(np.linalg.norm(Qs - Q @ (Q.T @ Qs), 2)))


def generate(k, n, p, q, r, sigma, seed):
    """Planted problem: Gaussian X, W_i = B* S_i* A* with Haar A*, B*, Gaussian cores, noise sigma."""
    rng = np.random.default_rng(seed)
    A = qr_pos(rng.standard_normal((p, r)))[0].T
    B = qr_pos(rng.standard_normal((q, r)))[0]
    S = rng.standard_normal((k, r, r))
    X = rng.standard_normal((k, n, p))
    Y = ((X @ A.T) @ T(S)) @ B.T + sigma * rng.standard_normal((k, n, q))
    return X, Y, A, B


def load_dir(d):
    idx = sorted(int(m.group(1)) for f in os.listdir(d) if (m := re.fullmatch(r"X_(\d+)\.npy", f)))
    Xs = [np.load(os.path.join(d, f"X_{i}.npy")) for i in idx]
    Ys = [np.load(os.path.join(d, f"Y_{i}.npy")).reshape(len(x), -1) for i, x in zip(idx, Xs)]
    if os.path.exists(os.path.join(d, "W0.npy")):
        W0 = np.load(os.path.join(d, "W0.npy"))
        Ys = [y - x @ W0.T for x, y in zip(Xs, Ys)]
    n = np.array([len(x) for x in Xs])
    X, R = np.zeros((len(Xs), n.max(), Xs[0].shape[1])), np.zeros((len(Xs), n.max(), Ys[0].shape[1]))
    for i, (x, y) in enumerate(zip(Xs, Ys)):
        X[i, : len(x)], R[i, : len(x)] = x, y
    truth = [np.load(os.path.join(d, f)) if os.path.exists(os.path.join(d, f)) else None
             for f in ("truth_A.npy", "truth_B.npy")]
    return X, R, n, truth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="colora task directory (X_<i>.npy, Y_<i>.npy [, W0.npy])")
    src.add_argument("--generate", help="k,n,p,q,r: a planted Gaussian problem")
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1, help="seed of --generate and of --init random")
    ap.add_argument("--save", help="write the generated problem as a colora task directory (+ truth_A/B.npy)")
    ap.add_argument("--rank", type=int, help="r (default: the r of --generate)")
    ap.add_argument("--iters", type=int, default=100, help="max iterations (Solver default 100; colora fit: 50)")
    ap.add_argument("--tol", type=float, default=1e-10)
    ap.add_argument("--init", choices=["spectral", "random"], default="spectral")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--threads", type=int, default=0, help="BLAS threads (0 = the BLAS default)")
    ap.add_argument("--coretype", help="OPENBLAS_CORETYPE (default: OpenBLAS autodetects)")
    ap.add_argument("--time-iteration", type=int, metavar="N", default=0,
                    help="run N+1 iterations with tol 0; report the median time of iterations 2..N+1")
    a = ap.parse_args()
    if a.generate:
        k, n, p, q, r = (int(v) for v in a.generate.split(","))
        X, R, A_star, B_star = generate(k, n, p, q, r, a.sigma, a.seed)
        nvec, rank = np.full(k, n), a.rank or r
        if a.save:
            os.makedirs(a.save, exist_ok=True)
            for name, v in [(f"{c}_{i}", M[i]) for i in range(k) for c, M in (("X", X), ("Y", R))] + \
                    [("truth_A", A_star), ("truth_B", B_star)]:
                np.save(os.path.join(a.save, name + ".npy"), v)
    else:
        X, R, nvec, (A_star, B_star) = load_dir(a.data)
        rank = a.rank or ap.error("--rank is required with --data")
    dt = np.dtype(a.dtype)
    X, R = np.ascontiguousarray(X, dtype=dt), np.ascontiguousarray(R, dtype=dt)
    iters, tol = (a.time_iteration + 1, 0.0) if a.time_iteration else (a.iters, a.tol)
    A, B, S, h = fit(X, R, nvec, rank, iters, tol, a.init, a.seed)
    out = {"peer": "numpy", "numpy": np.__version__, "dtype": a.dtype, "threads": a.threads, "blas": blas_info(),
           "loadavg": open("/proc/loadavg").read().split()[:3],
           "sizes": dict(zip("knpqr", (X.shape[0], int(nvec.max()), X.shape[2], R.shape[2], rank))),
           "init": a.init, "tol": tol, **h, "total_seconds": h["seconds"][-1], "init_seconds": h["seconds"][0]}
    if a.time_iteration:
        ts = h["iteration_seconds"][2:]
        out["time_per_iteration"] = {"median": float(np.median(ts)), "mean": float(np.mean(ts)), "count": len(ts),
                                     "products_mean": float(np.mean(h["products"][2:]))}
    if A_star is not None and B_star is not None:
        out["dist_a"], out["dist_b"] = dist(A.T, A_star.T), dist(B, B_star)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
