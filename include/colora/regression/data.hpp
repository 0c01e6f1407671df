// Multi-task data for heterogeneous linear regression: the two measurement
// models (docs/solver.md) and the planted ground truth.
//
//   (M1) RegressionProblem: task i has X_i (n_i x p), Y_i (n_i x q),
//        Y_i = X_i W_i^T + E_i.  The primary, fast path.
//   (M2) SensingProblem:    task i has m_i measurement matrices M_ij (q x p),
//        stored as the rows of an m_i x (q p) matrix (row j = vec(M_ij),
//        column-major), and y_i in R^{m_i}: y_ij = <M_ij, W_i> + e_ij.
//
// Both share the interface the solver and the diagnostics are written
// against: num_tasks(), input_dim() (p), output_dim() (q), samples(i),
// base() (W_0, q x p, zero when empty), truth (optional), validate().
#pragma once

#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "colora/core/errors.hpp"

namespace colora {

/// One matrix per task, where tasks may share one stored matrix (copy on
/// write): the planted A_i*, B_i* equal A*, B* for every task when theta = 0,
/// and k copies of them would cost as much as a sixth of the training data
/// (issue 14). Reads like a std::vector<Matrix>: size(), [i], at(i),
/// iteration, push_back, pop_back, resize, assign. A non-const [i] (or
/// at(i)) gives task i its own copy first, so writing one task never changes
/// another; share(i, m) makes task i refer to m.
template <class Scalar>
class TaskMatrices {
 public:
  using value_type = Matrix<Scalar>;
  using Ptr = std::shared_ptr<value_type>;

  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = Matrix<Scalar>;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;
    const_iterator() = default;
    explicit const_iterator(typename std::vector<Ptr>::const_iterator it) : it_(it) {}
    reference operator*() const { return **it_; }
    pointer operator->() const { return it_->get(); }
    reference operator[](difference_type n) const { return *it_[n]; }
    const_iterator& operator++() {
      ++it_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator t = *this;
      ++it_;
      return t;
    }
    const_iterator& operator--() {
      --it_;
      return *this;
    }
    const_iterator operator--(int) {
      const_iterator t = *this;
      --it_;
      return t;
    }
    const_iterator& operator+=(difference_type n) {
      it_ += n;
      return *this;
    }
    const_iterator& operator-=(difference_type n) {
      it_ -= n;
      return *this;
    }
    friend const_iterator operator+(const_iterator a, difference_type n) { return a += n; }
    friend const_iterator operator+(difference_type n, const_iterator a) { return a += n; }
    friend const_iterator operator-(const_iterator a, difference_type n) { return a -= n; }
    friend difference_type operator-(const const_iterator& a, const const_iterator& b) { return a.it_ - b.it_; }
    friend bool operator==(const const_iterator& a, const const_iterator& b) { return a.it_ == b.it_; }
    friend bool operator!=(const const_iterator& a, const const_iterator& b) { return a.it_ != b.it_; }
    friend bool operator<(const const_iterator& a, const const_iterator& b) { return a.it_ < b.it_; }

   private:
    typename std::vector<Ptr>::const_iterator it_;
  };

  TaskMatrices() = default;
  TaskMatrices(std::initializer_list<value_type> list) {
    for (const auto& m : list) push_back(m);
  }
  // Copies share the stored matrices too (cheap); writing through either
  // copy's non-const [i] gives that copy's task i its own matrix first.

  size_t size() const { return v_.size(); }
  bool empty() const { return v_.empty(); }
  void clear() { v_.clear(); }
  void reserve(size_t n) { v_.reserve(n); }
  /// New entries are empty matrices (each its own).
  void resize(size_t n) {
    const size_t old = v_.size();
    v_.resize(n);
    for (size_t i = old; i < n; ++i) v_[i] = std::make_shared<value_type>();
  }
  /// n tasks, all sharing one copy of m.
  void assign(size_t n, const value_type& m) { v_.assign(n, std::make_shared<value_type>(m)); }
  void push_back(value_type m) { v_.push_back(std::make_shared<value_type>(std::move(m))); }
  void emplace_back(value_type m) { push_back(std::move(m)); }
  void pop_back() { v_.pop_back(); }

  const value_type& operator[](size_t i) const { return *v_[i]; }
  const value_type& at(size_t i) const { return *v_.at(i); }
  value_type& operator[](size_t i) { return own(i); }
  value_type& at(size_t i) {
    (void)v_.at(i);
    return own(i);
  }
  const value_type& front() const { return *v_.front(); }
  const value_type& back() const { return *v_.back(); }
  const_iterator begin() const { return const_iterator(v_.cbegin()); }
  const_iterator end() const { return const_iterator(v_.cend()); }
  const_iterator cbegin() const { return begin(); }
  const_iterator cend() const { return end(); }

  /// Task i refers to the stored matrix `m` (shared with every other task
  /// given the same pointer; nobody writes it while it is shared).
  void share(size_t i, std::shared_ptr<const value_type> m) {
    v_[i] = std::const_pointer_cast<value_type>(std::move(m));
  }
  /// The stored matrix of task i, to share it with other tasks.
  std::shared_ptr<const value_type> shared(size_t i) const { return v_[i]; }

 private:
  value_type& own(size_t i) {
    Ptr& p = v_[i];
    if (!p)
      p = std::make_shared<value_type>();
    else if (p.use_count() > 1)
      p = std::make_shared<value_type>(*p);
    return *p;
  }

  std::vector<Ptr> v_;
};

/// The planted truth W_i* = W_0 + B_i* S_i* A_i* (docs/solver.md, "The generator").
template <class Scalar>
struct GroundTruth {
  Matrix<Scalar> A_shared;  ///< A*  (r x p), orthonormal rows
  Matrix<Scalar> B_shared;  ///< B*  (q x r), orthonormal columns
  /// A_i* (r x p): A* rotated by theta_A. With theta_A = 0 every task shares
  /// one stored copy of A* (TaskMatrices: copy on write).
  TaskMatrices<Scalar> A;
  TaskMatrices<Scalar> B;         ///< B_i* (q x r): B* rotated by theta_B (shared likewise when theta_B = 0)
  std::vector<Matrix<Scalar>> S;  ///< S_i* (r x r)
  double sigma = 0.0;             ///< noise standard deviation
  Vector<Scalar> input_scales;    ///< Sigma = diag(input_scales^2); empty = identity

  Index rank() const { return A_shared.rows(); }
  Index num_tasks() const { return static_cast<Index>(S.size()); }
  /// W_i* - W_0 = B_i* S_i* A_i* (q x p). Forms the dense matrix.
  Matrix<Scalar> delta(Index i) const { return B[size_t(i)] * S[size_t(i)] * A[size_t(i)]; }
};

/// (M1) one task of multi-output regression.
template <class Scalar>
struct RegressionTask {
  Matrix<Scalar> X;       ///< n_i x p inputs
  Matrix<Scalar> Y;       ///< n_i x q outputs
  Matrix<Scalar> X_test;  ///< optional held-out inputs (0 rows if none)
  Matrix<Scalar> Y_test;  ///< optional held-out outputs

  Index samples() const { return X.rows(); }
  Index test_samples() const { return X_test.rows(); }
};

/// (M2) one task of matrix sensing.
template <class Scalar>
struct SensingTask {
  Matrix<Scalar> M;       ///< m_i x (q p): row j is vec(M_ij) (column-major q x p)
  Vector<Scalar> y;       ///< m_i measurements
  Matrix<Scalar> M_test;  ///< optional held-out measurement matrices
  Vector<Scalar> y_test;

  Index samples() const { return M.rows(); }
  Index test_samples() const { return M_test.rows(); }
};

namespace detail {

template <class Problem>
void validate_common(const Problem& pb, const char* where) {
  require(!pb.tasks.empty(), where, "the problem has k = 0 tasks");
  require(pb.input_dim() > 0, where, "input dimension p must be positive, got ", pb.input_dim());
  require(pb.output_dim() > 0, where, "output dimension q must be positive, got ", pb.output_dim());
  if (pb.W0.size() != 0) {
    require(pb.W0.rows() == pb.output_dim() && pb.W0.cols() == pb.input_dim(), where,
            "W0 must be q x p = ", pb.output_dim(), " x ", pb.input_dim(), ", got ", pb.W0.rows(), " x ", pb.W0.cols());
    require_finite(pb.W0, where, "W0");
  }
}

/// sum_i n_i over a task list.
template <class Task>
Index total_samples_of(const std::vector<Task>& tasks) {
  Index n = 0;
  for (const auto& t : tasks) n += t.samples();
  return n;
}

/// Whether any task has a held-out split.
template <class Task>
bool any_test_split(const std::vector<Task>& tasks) {
  for (const auto& t : tasks)
    if (t.test_samples() > 0) return true;
  return false;
}

}  // namespace detail

/// (M1) heterogeneous multi-output linear regression.
template <class Scalar_>
struct RegressionProblem {
  using Scalar = Scalar_;
  std::vector<RegressionTask<Scalar>> tasks;
  Matrix<Scalar> W0;                         ///< q x p frozen base; empty = zero
  std::optional<GroundTruth<Scalar>> truth;  ///< set by the generator

  Index num_tasks() const { return static_cast<Index>(tasks.size()); }
  Index input_dim() const { return tasks.empty() ? 0 : tasks.front().X.cols(); }
  Index output_dim() const { return tasks.empty() ? 0 : tasks.front().Y.cols(); }
  Index samples(Index i) const { return tasks[size_t(i)].samples(); }
  Index total_samples() const { return detail::total_samples_of(tasks); }
  bool has_test() const { return detail::any_test_split(tasks); }

  /// Throws std::invalid_argument naming the task and the field on: k = 0,
  /// p or q differing across tasks, X/Y row mismatch, NaN/Inf, bad W0.
  void validate(const char* where = "colora::RegressionProblem") const {
    detail::validate_common(*this, where);
    const Index p = input_dim(), q = output_dim();
    for (size_t i = 0; i < tasks.size(); ++i) {
      const auto& t = tasks[i];
      detail::require(t.X.cols() == p, where, "task ", i, ": X has ", t.X.cols(), " columns but task 0 has p = ", p);
      detail::require(t.Y.cols() == q, where, "task ", i, ": Y has ", t.Y.cols(), " columns but task 0 has q = ", q);
      detail::require(t.X.rows() == t.Y.rows(), where, "task ", i, ": X has ", t.X.rows(), " rows but Y has ",
                      t.Y.rows(), " rows");
      detail::require(t.X.rows() > 0, where, "task ", i, ": has 0 samples");
      detail::require_finite(t.X, where, detail::concat("task ", i, ": X"));
      detail::require_finite(t.Y, where, detail::concat("task ", i, ": Y"));
      if (t.X_test.size() != 0 || t.Y_test.size() != 0) {
        detail::require(t.X_test.cols() == p && t.Y_test.cols() == q && t.X_test.rows() == t.Y_test.rows(), where,
                        "task ", i, ": X_test (", t.X_test.rows(), " x ", t.X_test.cols(), ") and Y_test (",
                        t.Y_test.rows(), " x ", t.Y_test.cols(), ") do not match p = ", p, ", q = ", q);
        detail::require_finite(t.X_test, where, detail::concat("task ", i, ": X_test"));
        detail::require_finite(t.Y_test, where, detail::concat("task ", i, ": Y_test"));
      }
    }
  }
};

/// (M2) heterogeneous matrix sensing.
template <class Scalar_>
struct SensingProblem {
  using Scalar = Scalar_;
  std::vector<SensingTask<Scalar>> tasks;
  Index p = 0;        ///< input width (columns of each M_ij)
  Index q = 0;        ///< output width (rows of each M_ij)
  Matrix<Scalar> W0;  ///< q x p frozen base; empty = zero
  std::optional<GroundTruth<Scalar>> truth;

  Index num_tasks() const { return static_cast<Index>(tasks.size()); }
  Index input_dim() const { return p; }
  Index output_dim() const { return q; }
  Index samples(Index i) const { return tasks[size_t(i)].samples(); }
  Index total_samples() const { return detail::total_samples_of(tasks); }
  bool has_test() const { return detail::any_test_split(tasks); }

  void validate(const char* where = "colora::SensingProblem") const {
    detail::validate_common(*this, where);
    for (size_t i = 0; i < tasks.size(); ++i) {
      const auto& t = tasks[i];
      detail::require(t.M.cols() == p * q, where, "task ", i, ": M has ", t.M.cols(), " columns but q p = ", p * q);
      detail::require(t.M.rows() == t.y.size(), where, "task ", i, ": M has ", t.M.rows(), " rows but y has ",
                      t.y.size(), " entries");
      detail::require(t.M.rows() > 0, where, "task ", i, ": has 0 samples");
      detail::require_finite(t.M, where, detail::concat("task ", i, ": M"));
      detail::require_finite(t.y, where, detail::concat("task ", i, ": y"));
      if (t.M_test.size() != 0 || t.y_test.size() != 0) {
        detail::require(t.M_test.cols() == p * q && t.M_test.rows() == t.y_test.size(), where, "task ", i,
                        ": M_test and y_test do not match");
        detail::require_finite(t.M_test, where, detail::concat("task ", i, ": M_test"));
        detail::require_finite(t.y_test, where, detail::concat("task ", i, ": y_test"));
      }
    }
  }
};

}  // namespace colora
