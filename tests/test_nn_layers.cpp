// colora::nn layers: finite-difference gradient checks for every layer, every
// adapter kind, the transformer block and the whole models; attention
// against a naive loop; stability at magnitude 1e4; adapter identities.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "test_support.hpp"

using colora::AdapterKind;
using colora::CoreKind;
using colora::Index;
using colora::Matrix;
using colora::Rng;
namespace nn = colora::nn;

namespace {

const AdapterKind kAllKinds[] = {AdapterKind::None,       AdapterKind::Lora, AdapterKind::Colora,
                                 AdapterKind::GlobalLora, AdapterKind::Ffa,  AdapterKind::Fedsa};

Index pick(Rng& rng, Index lo, Index hi) { return lo + Index(rng.below(std::uint64_t(hi - lo + 1))); }

/// Random values for every parameter (so B = 0 does not hide a wrong dA).
template <class Layer>
void randomize(Layer& layer, Rng& rng, double scale = 0.5) {
  layer.visit([&](auto& p) {
    if (p.value.size() > 0 && p.name.find(".E") == std::string::npos) rng.fill_normal(p.value, scale);
    if (p.name.find("gamma") != std::string::npos) p.value.array() += 1.0;
  });
}

/// Central differences of L = sum(R .* layer(X)) against backward, for every
/// trainable parameter (a sample of entries) and optionally the input.
/// Personal parameters of other tasks must get no gradient and must not
/// change the output.
template <class Layer>
void grad_check(Layer& layer, Matrix<double> X, int task, bool check_input, Rng& rng, int entries = 10) {
  nn::index_params(layer);
  auto ps = nn::param_list(layer);
  typename Layer::Cache c;
  Matrix<double> Y;
  layer.forward(X, task, c, Y);
  const Matrix<double> R = rng.normal_matrix<double>(Y.rows(), Y.cols());
  auto loss = [&]() {
    typename Layer::Cache c2;
    Matrix<double> Y2;
    layer.forward(X, task, c2, Y2);
    return (R.array() * Y2.array()).sum();
  };
  nn::Grads<double> g;
  g.begin(ps.size());
  Matrix<double> dX;
  layer.backward(R, task, c, g, check_input ? &dX : nullptr);
  const double h = 1e-6;
  auto fd_check = [&](Matrix<double>& v, const Matrix<double>& analytic, const std::string& what) {
    REQUIRE(analytic.rows() == v.rows());
    REQUIRE(analytic.cols() == v.cols());
    for (int e = 0; e < entries && v.size() > 0; ++e) {
      const Index idx = Index(rng.below(std::uint64_t(v.size())));
      const double orig = v.data()[idx];
      v.data()[idx] = orig + h;
      const double lp = loss();
      v.data()[idx] = orig - h;
      const double lm = loss();
      v.data()[idx] = orig;
      const double fd = (lp - lm) / (2 * h);
      const double an = analytic.data()[idx];
      INFO(what << " entry " << idx << ": finite difference " << fd << ", backward " << an);
      CHECK(std::abs(fd - an) <= 1e-6 * (1.0 + std::abs(fd)));
    }
  };
  int checked = 0;
  for (auto* p : ps) {
    if (!p->trainable()) continue;
    if (p->role == nn::ParamRole::Personal && p->task != task) {
      CHECK_FALSE(g.has(p->id));
      const double l0 = loss();
      if (p->value.size() > 0) {
        p->value(0, 0) += 1.0;
        CHECK(loss() == l0);
        p->value(0, 0) -= 1.0;
      }
      continue;
    }
    if (p->value.size() == 0) continue;
    INFO("parameter " << p->name);
    REQUIRE(g.has(p->id));
    fd_check(p->value, g.g[p->id], p->name);
    ++checked;
  }
  if (check_input) fd_check(X, dX, "input");
  (void)checked;
}

nn::AdapterSpec spec_for(AdapterKind k, Index r, CoreKind core = CoreKind::Full) {
  return nn::AdapterSpec{k, r, 2.0 * double(r), core};
}

}  // namespace

TEST_CASE("gradient check: Linear with every adapter kind, random shapes") {
  auto rng = colora_test::rng_for("gradcheck linear");
  for (AdapterKind kind : kAllKinds)
    for (CoreKind core : {CoreKind::Full, CoreKind::Diagonal})
      for (bool base : {false, true}) {
        if (core == CoreKind::Diagonal && kind != AdapterKind::Colora) continue;
        const Index p = pick(rng, 3, 7), q = pick(rng, 2, 6), n = pick(rng, 1, 5);
        const Index r = pick(rng, 1, std::min(p, q));
        CAPTURE(colora::to_string(kind));
        CAPTURE(colora::to_string(core));
        CAPTURE(base);
        nn::Linear<double> lin("lin", p, q, 3, spec_for(kind, r, core), rng.substream(1), base);
        randomize(lin, rng);
        grad_check(lin, rng.normal_matrix<double>(n, p), 1, true, rng);
      }
}

// GELU runs as array expressions (Eigen's vectorized erf for float): forward
// and backward must equal the scalar definitions x Phi(x) and
// Phi(x) + x phi(x) (std::erf, std::exp in long double) to a few ulp, over
// the whole range including |x| where erf saturates.
TEST_CASE_TEMPLATE("GELU forward and backward equal the scalar definition to a few ulp", S, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("gelu");
  Matrix<S> X = rng.normal_matrix<S>(50, 40) * S(3);
  X(0, 0) = S(0);
  X(1, 0) = S(-9);
  X(2, 0) = S(9);
  X(3, 0) = S(1e-4);
  nn::ActivationLayer<S> act(nn::Activation::Gelu);
  typename nn::ActivationLayer<S>::Cache c;
  Matrix<S> Y, dX;
  act.forward(X, 0, c, Y);
  const Matrix<S> dY = Matrix<S>::Ones(X.rows(), X.cols());
  nn::Grads<S> g;
  act.backward(dY, 0, c, g, &dX);
  const double eps = double(Eigen::NumTraits<S>::epsilon());
  double worst_y = 0, worst_d = 0;
  for (Index j = 0; j < X.cols(); ++j)
    for (Index i = 0; i < X.rows(); ++i) {
      const long double x = X(i, j);
      const long double cdf = 0.5L * (1 + std::erf(x / std::sqrt(2.0L)));
      const long double y = x * cdf, d = cdf + x * std::exp(-0.5L * x * x) / std::sqrt(2 * 3.14159265358979323846L);
      worst_y = std::max(worst_y, double(std::fabs(Y(i, j) - y) / (std::fabs(x) + 1)));
      worst_d = std::max(worst_d, double(std::fabs(dX(i, j) - d) / (std::fabs(d) + 1)));
    }
  INFO("max error, relative to |x| + 1: forward ", worst_y, ", backward ", worst_d, " (eps ", eps, ")");
  CHECK(worst_y <= 16 * eps);
  CHECK(worst_d <= 16 * eps);
}

TEST_CASE("gradient check: activations, LayerNorm, MLP block, embedding, pooling") {
  auto rng = colora_test::rng_for("gradcheck layers");
  for (nn::Activation a : {nn::Activation::Gelu, nn::Activation::Relu}) {
    nn::ActivationLayer<double> act(a);
    grad_check(act, rng.normal_matrix<double>(4, 5), 0, true, rng);
  }
  {
    nn::LayerNorm<double> ln("ln", 6, true);
    randomize(ln, rng);
    grad_check(ln, rng.normal_matrix<double>(4, 6), 0, true, rng);
  }
  for (AdapterKind kind : kAllKinds) {
    CAPTURE(colora::to_string(kind));
    nn::MlpBlock<double> mlp("mlp", 5, 7, 4, 2, spec_for(kind, 2), spec_for(kind, 3, CoreKind::Diagonal),
                             nn::Activation::Gelu, rng.substream(3), kind == AdapterKind::None);
    randomize(mlp, rng);
    grad_check(mlp, rng.normal_matrix<double>(3, 5), 1, true, rng);
  }
  {
    nn::TokenEmbedding<double> emb("emb", 7, 4, 3, rng.substream(4), true);
    Matrix<double> ids(6, 1);
    ids << 0, 6, 2, 2, 5, 1;
    grad_check(emb, ids, 0, false, rng);
  }
  {
    nn::MeanPool<double> pool(3);
    grad_check(pool, rng.normal_matrix<double>(6, 4), 0, true, rng);
  }
}

TEST_CASE("gradient check: multi-head attention (causal and not) with adapters on q, k, v, o") {
  auto rng = colora_test::rng_for("gradcheck attention");
  for (bool causal : {false, true}) {
    nn::AttentionAdapters ad;
    ad.q = spec_for(AdapterKind::Colora, 2);
    ad.k = spec_for(AdapterKind::Lora, 2);
    ad.v = spec_for(AdapterKind::Colora, 3, CoreKind::Diagonal);
    ad.o = spec_for(AdapterKind::Fedsa, 2);
    const Index heads = pick(rng, 2, 3), dh = pick(rng, 2, 3), T = pick(rng, 2, 4), B = pick(rng, 1, 2);
    nn::MultiHeadAttention<double> att("att", heads * dh, heads, T, causal, 2, ad, rng.substream(5), true);
    randomize(att, rng);
    grad_check(att, rng.normal_matrix<double>(B * T, heads * dh), 1, true, rng, 8);
  }
}

TEST_CASE("gradient check: pre-LN transformer block, every adapter kind") {
  auto rng = colora_test::rng_for("gradcheck transformer block");
  for (AdapterKind kind : kAllKinds) {
    CAPTURE(colora::to_string(kind));
    nn::BlockAdapters ad = nn::adapters_qv_mlp(spec_for(kind, 2));
    const bool base = kind == AdapterKind::None;
    nn::TransformerBlock<double> blk("blk", 4, 2, 6, 3, kind == AdapterKind::Lora, 2, ad, nn::Activation::Gelu,
                                     rng.substream(6), base);
    randomize(blk, rng);
    grad_check(blk, rng.normal_matrix<double>(2 * 3, 4), 0, true, rng, 6);
  }
}

TEST_CASE("gradient check: whole MLP and transformer models") {
  auto rng = colora_test::rng_for("gradcheck models");
  {
    nn::MlpSpec s;
    s.in = 5;
    s.hidden = {6, 4};
    s.out = 3;
    s.num_tasks = 3;
    s.adapter = spec_for(AdapterKind::Colora, 2);
    s.activation = nn::Activation::Relu;
    nn::MlpModel<double> m(s);
    randomize(m, rng);
    grad_check(m, rng.normal_matrix<double>(4, 5), 2, true, rng);
  }
  {
    nn::TransformerSpec s;
    s.d_in = 3;
    s.seq_len = 3;
    s.d_model = 4;
    s.heads = 2;
    s.d_ff = 5;
    s.layers = 2;
    s.d_out = 2;
    s.num_tasks = 2;
    s.adapters = nn::adapters_qv_mlp(spec_for(AdapterKind::Colora, 2));
    s.input_adapter = spec_for(AdapterKind::Lora, 2);
    s.head_adapter = spec_for(AdapterKind::Colora, 2, CoreKind::Diagonal);
    nn::TransformerModel<double> m(s);
    randomize(m, rng);
    grad_check(m, rng.normal_matrix<double>(2 * 3, 3), 1, true, rng, 6);
  }
  {
    nn::TransformerSpec s;
    s.vocab = 5;
    s.seq_len = 2;
    s.d_model = 4;
    s.heads = 1;
    s.d_out = 3;
    s.causal = true;
    s.num_tasks = 2;
    s.base_trainable = true;
    nn::TransformerModel<double> m(s);
    randomize(m, rng);
    Matrix<double> ids(4, 1);
    ids << 1, 4, 0, 3;
    grad_check(m, ids, 0, false, rng, 6);
  }
}

TEST_CASE_TEMPLATE("attention equals a naive per-token reference loop", S, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("attention naive");
  for (bool causal : {false, true}) {
    const Index H = 2, dh = 3, d = H * dh, T = 4, B = 2;
    nn::AttentionAdapters ad;
    ad.q = spec_for(AdapterKind::Colora, 2);
    ad.v = spec_for(AdapterKind::Lora, 2);
    nn::MultiHeadAttention<S> att("att", d, H, T, causal, 2, ad, rng.substream(7));
    randomize(att, rng);
    const int task = 1;
    const Matrix<S> X = rng.normal_matrix<S>(B * T, d);
    typename nn::MultiHeadAttention<S>::Cache c;
    Matrix<S> Y;
    att.forward(X, task, c, Y);
    // Reference in double with the dense effective weights.
    const Matrix<double> Xd = X.template cast<double>();
    auto proj = [&](const nn::Linear<S>& l, const Matrix<double>& in) {
      Matrix<double> out = in * l.effective_weight(task).template cast<double>().transpose();
      out.rowwise() += l.b0.value.row(0).template cast<double>();
      return out;
    };
    const Matrix<double> Q = proj(att.q, Xd), K = proj(att.k, Xd), V = proj(att.v, Xd);
    Matrix<double> O = Matrix<double>::Zero(B * T, d);
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < H; ++h)
        for (Index i = 0; i < T; ++i) {
          std::vector<double> w(T, 0.0);
          double mx = -1e300, sum = 0;
          const Index last = causal ? i : T - 1;
          for (Index j = 0; j <= last; ++j) {
            double s = 0;
            for (Index e = 0; e < dh; ++e) s += Q(b * T + i, h * dh + e) * K(b * T + j, h * dh + e);
            w[j] = s / std::sqrt(double(dh));
            mx = std::max(mx, w[j]);
          }
          for (Index j = 0; j <= last; ++j) sum += (w[j] = std::exp(w[j] - mx));
          for (Index j = 0; j <= last; ++j)
            for (Index e = 0; e < dh; ++e) O(b * T + i, h * dh + e) += w[j] / sum * V(b * T + j, h * dh + e);
        }
    const Matrix<double> ref = proj(att.o, O);
    CHECK((Y.template cast<double>() - ref).norm() <= 10 * colora_test::Tol<S>::tight * (1 + ref.norm()));
  }
}

TEST_CASE_TEMPLATE("LayerNorm and softmax are stable at magnitude 1e4", S, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("stability 1e4");
  const double tol = std::is_same<S, double>::value ? 1e-9 : 2e-3;
  nn::LayerNorm<S> ln("ln", 16);
  const Matrix<S> X = rng.normal_matrix<S>(5, 16);
  typename nn::LayerNorm<S>::Cache c;
  Matrix<S> Y0, Y1, Y2;
  nn::LayerNorm<S>("ln", 16, false, 1e-13).forward(X, 0, c, Y0);  // same eps relative to the variance
  const Matrix<S> Xs = X * S(1e4);
  ln.forward(Xs, 0, c, Y1);
  CHECK(Y1.allFinite());
  CHECK((Y1 - Y0).cwiseAbs().maxCoeff() <= tol);
  if (std::is_same<S, double>::value) {  // a large common offset: float has no digits left for it
    ln.forward(X, 0, c, Y0);
    const Matrix<S> Xo = X.array() + S(1e4);
    ln.forward(Xo, 0, c, Y2);
    CHECK((Y2 - Y0).cwiseAbs().maxCoeff() <= 1e-9);
  }
  // Softmax and cross-entropy with logits of magnitude 1e4.
  Matrix<S> Z = rng.normal_matrix<S>(4, 5);
  const Matrix<S> P0 = nn::softmax_rows(Z);
  const Matrix<S> Zb = Z.array() + S(1e4);
  const Matrix<S> P1 = nn::softmax_rows(Zb);
  CHECK(P1.allFinite());
  CHECK((P1 - P0).cwiseAbs().maxCoeff() <= (std::is_same<S, double>::value ? 1e-9 : 1e-2));
  Matrix<S> L(1, 2), lab(1, 1), G;
  L << S(1e4), S(-1e4);
  lab << S(1);
  const double ce = nn::loss_value(nn::LossKind::CrossEntropy, L, lab, &G);
  CHECK(ce == doctest::Approx(2e4).epsilon(1e-6));
  CHECK(G.allFinite());
  CHECK(double(G(0, 0)) == doctest::Approx(1.0));
  CHECK(double(G(0, 1)) == doctest::Approx(-1.0));
}

TEST_CASE_TEMPLATE("a zero adapter update leaves the base output unchanged bit for bit", S, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("zero update");
  const Index p = 9, q = 7, n = 6;
  nn::Linear<S> base("lin", p, q, 2, nn::AdapterSpec{}, rng.substream(1));
  base.b0.value = rng.normal_matrix<S>(1, q);
  const Matrix<S> X = rng.normal_matrix<S>(n, p);
  typename nn::Linear<S>::Cache c;
  Matrix<S> Y0, Y1;
  base.forward(X, 1, c, Y0);
  for (AdapterKind kind : kAllKinds) {
    for (CoreKind core : {CoreKind::Full, CoreKind::Diagonal}) {
      CAPTURE(colora::to_string(kind));
      nn::Linear<S> lin("lin", p, q, 2, nn::AdapterSpec{kind, 3, 5.0, core}, rng.substream(2));
      lin.W0.value = base.W0.value;
      lin.b0.value = base.b0.value;
      // Initialization: W = W_0, i.e. the update B S_i A is exactly zero.
      lin.forward(X, 1, c, Y1);
      CHECK((Y1.array() == Y0.array()).all());
      CHECK((lin.effective_weight(1).array() == base.W0.value.array()).all());
    }
  }
}

TEST_CASE_TEMPLATE("colora with S_i = I equals lora with the same B and A", S, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("colora identity core");
  const Index p = 8, q = 5, r = 3, n = 4;
  nn::Linear<S> co("lin", p, q, 2, spec_for(AdapterKind::Colora, r), rng.substream(1));
  nn::Linear<S> lo("lin", p, q, 2, spec_for(AdapterKind::Lora, r), rng.substream(1));
  co.B.value = rng.normal_matrix<S>(q, r);
  for (int t = 0; t < 2; ++t) {
    lo.As[t].value = co.A.value;
    lo.Bs[t].value = co.B.value;
    REQUIRE((co.Ss[t].value.array() == Matrix<S>::Identity(r, r).array()).all());
  }
  const Matrix<S> X = rng.normal_matrix<S>(n, p);
  typename nn::Linear<S>::Cache c1, c2;
  Matrix<S> Y1, Y2;
  co.forward(X, 1, c1, Y1);
  lo.forward(X, 1, c2, Y2);
  CHECK((Y1.array() == Y2.array()).all());
  // And the initial gradient with respect to B is not zero (colora init).
  nn::index_params(co);
  nn::Grads<S> g;
  g.begin(nn::param_list(co).size());
  co.B.value.setZero();
  co.forward(X, 1, c1, Y1);
  co.backward(Matrix<S>::Ones(n, q), 1, c1, g, nullptr);
  REQUIRE(g.has(co.B.id));
  CHECK(g.g[co.B.id].norm() > 0);
}

TEST_CASE("float and double models agree in the forward pass") {
  nn::TransformerSpec s;
  s.d_in = 5;
  s.seq_len = 4;
  s.d_model = 8;
  s.heads = 2;
  s.d_out = 3;
  s.num_tasks = 2;
  s.adapters = nn::adapters_qv_mlp(spec_for(AdapterKind::Colora, 2));
  nn::TransformerModel<double> md(s);
  nn::TransformerModel<float> mf(s);
  auto rng = colora_test::rng_for("float vs double");
  auto pd = nn::param_list(md);
  auto pf = nn::param_list(mf);
  REQUIRE(pd.size() == pf.size());
  for (std::size_t i = 0; i < pd.size(); ++i) {
    rng.fill_normal(pd[i]->value, 0.3);
    pf[i]->value = pd[i]->value.cast<float>();
  }
  const Matrix<double> X = rng.normal_matrix<double>(3 * 4, 5);
  const Matrix<double> Yd = md.predict(X, 1);
  const Matrix<float> Yf = mf.predict(X.cast<float>(), 1);
  CHECK((Yf.cast<double>() - Yd).norm() <= colora_test::Tol<float>::recovery * (1 + Yd.norm()));
}

TEST_CASE("bad input: shapes, task ids, ranks name the field and the value") {
  auto rng = colora_test::rng_for("bad input nn");
  nn::Linear<double> lin("proj", 4, 3, 2, spec_for(AdapterKind::Colora, 2), rng);
  typename nn::Linear<double>::Cache c;
  Matrix<double> Y;
  CHECK_THROWS_WITH_AS(lin.forward(Matrix<double>::Zero(2, 5), 0, c, Y),
                       doctest::Contains("input has 5 columns, expected in = 4"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(lin.forward(Matrix<double>::Zero(2, 4), 2, c, Y), doctest::Contains("task = 2 out of range"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Linear<double>("proj", 4, 3, 2, spec_for(AdapterKind::Lora, 4), rng),
                       doctest::Contains("rank = 4"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::MultiHeadAttention<double>("att", 6, 4, 2, false, 1, {}, rng),
                       doctest::Contains("d_model = 6"), std::invalid_argument);
  nn::TokenEmbedding<double> emb("emb", 3, 2, 0, rng);
  typename nn::TokenEmbedding<double>::Cache ce;
  Matrix<double> ids(1, 1);
  ids << 3;
  CHECK_THROWS_WITH_AS(emb.forward(ids, 0, ce, Y), doctest::Contains("token id 3"), std::invalid_argument);
  Matrix<double> logits = Matrix<double>::Zero(2, 3), lab(2, 1);
  lab << 0, 3;
  CHECK_THROWS_WITH_AS(nn::loss_value(nn::LossKind::CrossEntropy, logits, lab, &Y), doctest::Contains("class id 3"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(colora::parse_adapter_kind("lorax"), doctest::Contains("lorax"), std::invalid_argument);
}
