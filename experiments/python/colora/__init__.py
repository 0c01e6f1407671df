"""colora: collaborative low-rank adaptation (CoLoRA) from Python.

The model: task i has inputs X_i (n_i x p) and outputs Y_i (n_i x q) with

    Y_i = X_i W_i^T + noise,    W_i = W_0 + B S_i A,

where A (r x p) and B (q x r) are shared by every task and the r x r core
S_i is personal. ``CoLoRA`` fits it by alternating minimization (the C++
library's ``colora::Solver``, compiled into ``colora._core``); every baseline
of the C++ library runs through ``fit_baseline`` on the same data.

    import colora
    pb = colora.generate(tasks=50, p=40, q=30, rank=3, samples=40, seed=1)
    model = colora.CoLoRA(rank=3).fit(pb.Xs, pb.Ys)
    model.predict(pb.Xs_test[0], task=0)

Documentation: docs/python.md of the colora repository.
"""

import inspect as _inspect

import numpy as _np

from . import _core

__version__ = _core.__version__
__all__ = [
    "CoLoRA",
    "BaselineResult",
    "Problem",
    "fit_baseline",
    "baseline_names",
    "generate",
    "recovery_metrics",
    "write_peft_adapter",
    "read_peft_adapter",
    "oracle_core_floor",
    "oracle_head_floor",
    "oracle_free_floor",
    "oracle_core_test_mse",
]

oracle_core_floor = _core.oracle_core_floor
oracle_head_floor = _core.oracle_head_floor
oracle_free_floor = _core.oracle_free_floor
oracle_core_test_mse = _core.oracle_core_test_mse


def baseline_names():
    """Every method ``fit_baseline`` knows (the C++ registry's order)."""
    return list(_core.baseline_names())


class Problem:
    """A generated multi-task problem: per-task lists of arrays and the planted truth.

    Attributes: ``Xs``, ``Ys`` (training), ``Xs_test``, ``Ys_test`` (held out;
    empty lists when ``test_samples=0``), ``W0`` (None for a zero base) and
    ``truth``, a dict with ``A`` (r x p), ``B`` (q x r), ``cores`` (list of
    r x r), ``A_tasks``/``B_tasks`` (per-task planted factors; one shared array
    when the tasks share them), ``sigma`` and ``input_scales``.
    """

    def __init__(self, d):
        self.Xs = d["Xs"]
        self.Ys = d["Ys"]
        self.Xs_test = d["Xs_test"]
        self.Ys_test = d["Ys_test"]
        self.W0 = d["W0"]
        self.truth = d["truth"]

    @property
    def num_tasks(self):
        return len(self.Xs)

    def __repr__(self):
        k = len(self.Xs)
        p = self.Xs[0].shape[1] if k else 0
        q = self.Ys[0].shape[1] if k else 0
        r = self.truth["A"].shape[0]
        return "Problem(tasks=%d, p=%d, q=%d, rank=%d, dtype=%s)" % (k, p, q, r, self.Xs[0].dtype if k else "?")


def generate(tasks=20, p=30, q=30, rank=3, samples=60, test_samples=100, sigma=0.1, kappa=2.0, tau=1.0,
             theta_a=0.0, theta_b=0.0, input_condition=1.0, random_base=False, seed=1, threads=0,
             dtype="float64"):
    """The planted generator of the C++ library (``colora::generate_regression``).

    ``samples`` is one n_i for every task or a list of k values. The same seed
    gives the same problem as the C++ call and the ``colora`` program.
    Returns a ``Problem``.
    """
    opts = dict(tasks=tasks, p=p, q=q, rank=rank, samples=samples, test_samples=test_samples, sigma=sigma,
                kappa=kappa, tau=tau, theta_a=theta_a, theta_b=theta_b, input_condition=input_condition,
                random_base=random_base, seed=seed, threads=threads)
    return Problem(_core.generate(opts, str(_np.dtype(dtype))))


def recovery_metrics(truth, A, B, cores, threads=0):
    """Subspace distances of (A, B) and per-task relative errors of B S_i A against a planted truth.

    Returns a dict: dist_a, dist_b (sine of the largest principal angle),
    dist_a_frob, dist_b_frob, mean_rel_err, median_rel_err, max_rel_err,
    mean_sq_err, and the per-task arrays rel_err and sq_err.
    """
    return _core.recovery_metrics(truth, A, B, list(cores), threads)


def write_peft_adapter(directory, modules, base_model=None, task_type=None):
    """Writes a Hugging Face PEFT LoRA directory (colora::nn::write_peft_adapter).

    ``modules``: list of (name, lora_A, lora_B), lora_A r x in and lora_B out x r,
    so that the module's weight update is lora_B @ lora_A. Writes
    ``adapter_model.safetensors`` (tensors ``base_model.model.<name>.lora_A.weight``
    and ``.lora_B.weight``) and ``adapter_config.json`` (peft_type LORA,
    lora_alpha = r so PEFT's scaling is 1), each atomically. float32 when every
    array is float32, else float64. docs/io.md gives the format.
    """
    _core.write_peft_adapter(str(directory), [tuple(m) for m in modules], base_model, task_type)


def read_peft_adapter(directory, dtype="float64"):
    """Reads a PEFT LoRA directory back (colora::nn::read_peft_adapter; hostile files are rejected).

    Returns a dict: ``r``, ``lora_alpha``, ``target_modules``,
    ``base_model_name_or_path`` and ``modules``, a list of (name, lora_A,
    lora_B, scaling) with the update scaling * lora_B @ lora_A.
    """
    return _core.read_peft_adapter(str(directory), str(_np.dtype(dtype)))


def _check_task(task, num_tasks):
    """TypeError unless ``task`` is an int, IndexError unless 0 <= task < num_tasks."""
    if not isinstance(task, (int, _np.integer)) or isinstance(task, bool):
        raise TypeError("task must be an int, got %s" % type(task).__name__)
    if not 0 <= task < num_tasks:
        raise IndexError("task %d is out of range [0, %d)" % (task, num_tasks))


def _lora_pair(D):
    """An exact LoRA pair (A, B) with B @ A = D for a dense update (rank min(in, out))."""
    out_dim, in_dim = D.shape
    if in_dim <= out_dim:
        return _np.eye(in_dim, dtype=D.dtype), D
    return D, _np.eye(out_dim, dtype=D.dtype)


def _test_split(test):
    if test is None:
        return None, None
    try:
        Xs_test, Ys_test = test
    except (TypeError, ValueError):
        raise TypeError("test: expected a pair (Xs_test, Ys_test) of per-task lists") from None
    return Xs_test, Ys_test




class BaselineResult:
    """What ``fit_baseline`` returns: the fit's report and its estimate.

    Every method's estimate is W_i = W_0 + U_i V_i^T (``U[i]`` q x r_i and
    ``V[i]`` p x r_i, or, when ``dense``, ``U[i]`` is the full W_i - W_0);
    ``A``/``B`` are the shared factors when the method has them (else None);
    ``shared`` and ``personal`` hold the method's own named parameters.
    """

    def __init__(self, d):
        self.method = d["method"]
        self.status = d["status"]
        self.stop_reason = d["stop_reason"]
        self.n_iter = d["n_iter"]
        self.solver_seconds = d["solver_seconds"]
        self.history = d["history"]
        self.warnings = list(d["warnings"])
        self.A = d["A"]
        self.B = d["B"]
        self.W0 = d["W0"]
        self.U = d["U"]
        self.V = d["V"]
        self.dense = d["dense"]
        self.shared = d["shared"]
        self.personal = d["personal"]
        self.trainable_parameters = d["trainable_parameters"]
        self.metrics = d["metrics"]

    @property
    def num_tasks(self):
        return len(self.U)

    def _v(self, task):
        return self.V[0] if len(self.V) == 1 else self.V[task]

    def _check_task(self, task):
        _check_task(task, self.num_tasks)

    def weight(self, task):
        """W_i (q x p, dense)."""
        self._check_task(task)
        D = self.U[task] if self.dense else self.U[task] @ self._v(task).T
        return D if self.W0 is None else D + self.W0

    def predict(self, X, task):
        """Predictions X W_i^T (n x q) for inputs X (n x p) of task ``task``."""
        self._check_task(task)
        X = _np.asarray(X)
        p = self.U[task].shape[1] if self.dense else self._v(task).shape[0]
        if X.ndim != 2 or X.shape[1] != p:
            raise ValueError("task %d: X has shape %s but p = %d" % (task, X.shape, p))
        Y = X @ self.U[task].T if self.dense else (X @ self._v(task)) @ self.U[task].T
        if self.W0 is not None:
            Y = Y + X @ self.W0.T
        return Y

    def export_peft(self, directory, task, module="linear", base_model=None):
        """Writes task ``task``'s update W_i - W_0 as a PEFT LoRA adapter of one linear layer.

        lora_A = V_i^T and lora_B = U_i (for the full-rank methods, an exact
        pair of rank min(p, q)); W_0 is the base layer's weight, not part of the adapter.
        """
        self._check_task(task)
        if self.dense:
            A, B = _lora_pair(self.U[task])
        else:
            A, B = self._v(task).T, self.U[task]
        write_peft_adapter(directory, [(module, A, B)], base_model=base_model)

    def __repr__(self):
        return "BaselineResult(method=%r, status=%r, n_iter=%d)" % (self.method, self.status, self.n_iter)


def fit_baseline(method, Xs, Ys, W0=None, *, rank=None, test=None, truth=None, **options):
    """Fits any method of the C++ registry (``baseline_names()``) to per-task data.

    ``Xs``/``Ys`` are lists of per-task arrays (n_i x p and n_i x q, or 1-D
    outputs for q = 1), float32 or float64 in any memory order; ``test`` an
    optional pair (Xs_test, Ys_test) recorded in the history; ``truth`` the
    planted truth of ``generate`` (adds truth errors to the history and
    ``metrics`` to the result). ``options`` are those of ``CoLoRA`` plus
    ``participation`` (fedrep) and ``gd_gd_step`` (gd-gd). Bad input raises
    ValueError (bad values) or TypeError (bad types) with the library's message.
    """
    if rank is not None:
        options["rank"] = rank
    Xs_test, Ys_test = _test_split(test)
    return BaselineResult(_core.fit(method, Xs, Ys, W0, Xs_test, Ys_test, truth, options))


class CoLoRA:
    """CoLoRA estimator (scikit-learn conventions): W_i = W_0 + B S_i A.

    Parameters (the C++ ``colora::SolverOptions`` of the same names):
      rank            r, the shared rank (required, 1 <= r <= p)
      a_step          "cg" (default), "exact" or "gd": how the A-step solves its system
      core            "full" (r x r cores) or "diagonal"
      max_iterations  iteration cap
      tol             stop when the objective's relative decrease is below tol
      init            "spectral" (default) or "random"
      threads         OpenMP threads (0 = all); results do not depend on it
      lam             ridge on the cores (SolverOptions::lambda)
      weighting       "per-sample" (default) or "per-task"
      seed            seed of the random initialization
      cg_max_products, cg_tolerance, cg_reduction, gd_step: A-step controls

    Fitted attributes: ``A_`` (r x p), ``B_`` (q x r), ``cores_`` (list of
    r x r), ``W0_`` (or None), ``n_iter_``, ``history_`` (dict of arrays, one
    entry per iteration), ``status_`` ("Success", "MaxIterations" or
    "NumericalIssue"), ``stop_reason_``, ``warnings_``, ``metrics_``
    (when fit with ``truth``), ``n_features_in_`` (p), ``n_outputs_`` (q),
    ``solver_seconds_`` (wall time of the C++ fit itself, without the
    conversion of the arrays: what the same call costs from C++).
    """

    def __init__(self, rank=4, a_step="cg", core="full", max_iterations=100, tol=1e-10, init="spectral",
                 threads=0, lam=0.0, weighting="per-sample", seed=0, cg_max_products=50, cg_tolerance=0.0,
                 cg_reduction=1e-2, gd_step=1.0):
        self.rank = rank
        self.a_step = a_step
        self.core = core
        self.max_iterations = max_iterations
        self.tol = tol
        self.init = init
        self.threads = threads
        self.lam = lam
        self.weighting = weighting
        self.seed = seed
        self.cg_max_products = cg_max_products
        self.cg_tolerance = cg_tolerance
        self.cg_reduction = cg_reduction
        self.gd_step = gd_step

    @classmethod
    def _get_param_names(cls):
        names = cls.__dict__.get("_param_names")
        if names is None:  # read the constructor's signature once per class
            names = [n for n in _inspect.signature(cls.__init__).parameters if n != "self"]
            cls._param_names = names
        return names

    def get_params(self, deep=True):
        """The estimator's parameters as a dict (scikit-learn's get_params)."""
        return {n: getattr(self, n) for n in self._get_param_names()}

    def set_params(self, **params):
        """Sets parameters by name and returns self (scikit-learn's set_params)."""
        valid = set(self._get_param_names())
        for k, v in params.items():
            if k not in valid:
                raise ValueError("invalid parameter %r for estimator CoLoRA (valid: %s)" % (k, ", ".join(sorted(valid))))
            setattr(self, k, v)
        return self

    def __repr__(self):
        defaults = CoLoRA()
        changed = ["%s=%r" % (k, v) for k, v in self.get_params().items() if getattr(defaults, k) != v]
        return "CoLoRA(%s)" % ", ".join(changed)

    def _options(self):
        o = self.get_params()
        return o

    def fit(self, Xs, Ys, W0=None, *, test=None, truth=None):
        """Fits CoLoRA to per-task data and returns self.

        ``Xs``: list of k arrays n_i x p; ``Ys``: list of k arrays n_i x q (or
        1-D for q = 1); float32 (all of them: the fit runs in float) or
        float64, any memory order. ``W0``: q x p frozen base (None = zero).
        ``test``: optional (Xs_test, Ys_test), recorded as history_["test_mse"].
        ``truth``: the planted truth of ``generate`` (history_ then has the
        subspace distances and errors, and ``metrics_`` the final ones).
        The fit releases the GIL; Ctrl-C stops it after the current iteration
        and raises KeyboardInterrupt.
        """
        Xs_test, Ys_test = _test_split(test)
        d = _core.fit("colora", Xs, Ys, W0, Xs_test, Ys_test, truth, self._options(), True)
        self.A_ = d["A"]
        self.B_ = d["B"]
        self.cores_ = d["personal"]["S"]
        self.W0_ = d["W0"]
        self.n_iter_ = d["n_iter"]
        self.solver_seconds_ = d["solver_seconds"]
        self.history_ = d["history"]
        self.status_ = d["status"]
        self.stop_reason_ = d["stop_reason"]
        self.warnings_ = list(d["warnings"])
        self.metrics_ = d["metrics"]
        self.n_features_in_ = self.A_.shape[1]
        self.n_outputs_ = self.B_.shape[0]
        self._y_1d = all(getattr(y, "ndim", None) == 1 for y in Ys) if len(Ys) else False
        return self

    def _check_fitted(self):
        if not hasattr(self, "A_"):
            raise RuntimeError("this CoLoRA estimator is not fitted yet: call fit() first")

    def _check_task(self, task):
        _check_task(task, len(self.cores_))

    def weight(self, task):
        """W_i = W_0 + B S_i A (q x p, dense)."""
        self._check_fitted()
        self._check_task(task)
        W = self.B_ @ self.cores_[task] @ self.A_
        return W if self.W0_ is None else W + self.W0_

    def predict(self, X, task):
        """Predictions X W_i^T for inputs X (n x p) of task ``task`` (n x q; 1-D if fit on 1-D outputs)."""
        self._check_fitted()
        self._check_task(task)
        X = _np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError("task %d: X has shape %s but the model has p = %d inputs"
                             % (task, X.shape, self.n_features_in_))
        Y = ((X @ self.A_.T) @ self.cores_[task].T) @ self.B_.T
        if self.W0_ is not None:
            Y = Y + X @ self.W0_.T
        return Y[:, 0] if self._y_1d and Y.shape[1] == 1 else Y

    def mse(self, Xs, Ys):
        """Mean squared error over every output entry of every task."""
        self._check_fitted()
        if len(Xs) != len(Ys) or len(Xs) != len(self.cores_):
            raise ValueError("got %d input and %d output arrays for %d tasks" % (len(Xs), len(Ys), len(self.cores_)))
        se, n = 0.0, 0
        for i, (X, Y) in enumerate(zip(Xs, Ys)):
            R = _np.reshape(self.predict(X, i), _np.shape(Y)) - _np.asarray(Y)
            se += float(_np.sum(R * R))
            n += R.size
        return se / n

    def score(self, Xs, Ys):
        """Coefficient of determination R^2 pooled over tasks [choice]:

        1 - sum_i ||Y_i - Yhat_i||^2 / sum_i ||Y_i - mean_i(Y_i)||^2, with each
        task's outputs centred on their own column means (so a task's offset
        is not credited to the model). 1 is perfect; 0 is as good as
        predicting each task's mean.
        """
        self._check_fitted()
        if len(Xs) != len(Ys) or len(Xs) != len(self.cores_):
            raise ValueError("got %d input and %d output arrays for %d tasks" % (len(Xs), len(Ys), len(self.cores_)))
        ss_res, ss_tot = 0.0, 0.0
        for i, (X, Y) in enumerate(zip(Xs, Ys)):
            Y = _np.asarray(Y, dtype=_np.float64)
            Yh = _np.reshape(self.predict(X, i), Y.shape)
            ss_res += float(_np.sum((Y - Yh) ** 2))
            ss_tot += float(_np.sum((Y - Y.mean(axis=0)) ** 2))
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")

    def export_peft(self, directory, task, module="linear", base_model=None):
        """Writes task ``task``'s adapter as a PEFT LoRA directory of one linear layer named ``module``.

        The personal core is folded into B: lora_A = A (r x p), lora_B = B S_i
        (q x r), so a ``torch.nn.Linear(p, q)`` whose weight is W_0 + lora_B @
        lora_A predicts what ``predict(X, task)`` does. W_0 (``W0_``) is the
        base model's weight and is not part of the adapter.
        """
        self._check_fitted()
        self._check_task(task)
        write_peft_adapter(directory, [(module, self.A_, self.B_ @ self.cores_[task])], base_model=base_model)

    def adapt(self, X, Y, ridge=None):
        """Fits the core of a new task from its samples against the fitted A_, B_.

        Appends the core to ``cores_`` and returns the new task's index (use it
        with ``predict``). ``ridge`` defaults to the estimator's ``lam``; with
        ridge 0 and fewer than r samples the core is the minimum-norm one.
        """
        self._check_fitted()
        ridge = self.lam if ridge is None else ridge
        S = _core.adapt_core(self.A_, self.B_, self.W0_, X, Y, float(ridge), self.core)
        self.cores_.append(S)
        return len(self.cores_) - 1
