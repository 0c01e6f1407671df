// NumPy .npy I/O and the task-directory loader (docs/io.md).
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include "test_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using colora::Index;
using colora::Matrix;
using colora::Vector;
namespace io = colora::io;

namespace {

using colora_test::contains;
using colora_test::error_of;

/// A scratch directory cwd/colora_test_io_<name>, removed on exit.
struct ScratchDir : colora_test::ScratchDir {
  explicit ScratchDir(const std::string& name) : colora_test::ScratchDir("io_" + name) {}
};

#define CHECK_ERROR(Ex, expr, ...)                                                                                 \
  do {                                                                                                             \
    const std::string msg_ = error_of<Ex>([&] { (void)(expr); });                                                  \
    INFO("message: " << msg_);                                                                                     \
    for (const std::string& part_ : std::initializer_list<std::string>{__VA_ARGS__}) CHECK(contains(msg_, part_)); \
  } while (0)

template <class T>
std::string le_bytes(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    // The test host is little-endian (x86-64); assert rather than assume.
    REQUIRE(colora::io::detail::host_is_little_endian());
    out.append(reinterpret_cast<const char*>(b), sizeof(T));
  }
  return out;
}

/// A .npy file as NumPy (< 1.23) writes it: magic, version, little-endian
/// header length, the dict padded with spaces so that the data starts at a
/// multiple of 64, a final '\n', then the payload.
std::string numpy_file(const std::string& dict, const std::string& payload, int major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  const std::size_t hlen = header.size() + 1;
  header.append(64 - (prefix + hlen) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t n = header.size();
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (major != 1) {
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 24) & 0xff);
  }
  return out + header + payload;
}

std::string dict_for(const std::string& descr, bool fortran, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape + ", }";
}

/// A stream buffer that cannot seek (like a pipe): exercises the reader's
/// path that must not trust the header's size before the bytes arrive.
class PipeBuf : public std::streambuf {
 public:
  explicit PipeBuf(std::string data) : data_(std::move(data)) {
    char* b = data_.empty() ? nullptr : &data_[0];
    setg(b, b, b + data_.size());
  }

 private:
  std::string data_;
};

template <class Scalar>
bool bitwise_equal(const Matrix<Scalar>& a, const Matrix<Scalar>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(Scalar) * std::size_t(a.size())) == 0);
}

template <class Scalar>
Matrix<Scalar> random_matrix(colora::Rng& rng, Index r, Index c) {
  return rng.normal_matrix<Scalar>(r, c);
}

}  // namespace

// ---------------------------------------------------------------------------
// .npy round trips

TEST_CASE_TEMPLATE("npy round trip is bitwise exact for every order and shape", Scalar, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("npy round trip");
  ScratchDir dir("roundtrip");
  const std::pair<Index, Index> shapes[] = {{3, 4}, {0, 3}, {3, 0}, {1, 1}, {5, 1}, {1, 6}, {17, 9}};
  for (const auto order : {io::NpyOrder::C, io::NpyOrder::Fortran}) {
    for (const auto& s : shapes) {
      Matrix<Scalar> m = random_matrix<Scalar>(rng, s.first, s.second);
      if (m.size() > 2) {
        // Values that must survive untouched: signed zero, infinities, NaN, denormal.
        m(0, 0) = -Scalar(0);
        m(m.rows() - 1, m.cols() - 1) = std::numeric_limits<Scalar>::infinity();
        m(m.rows() / 2, m.cols() / 2) = std::numeric_limits<Scalar>::denorm_min();
        m(1 % m.rows(), 0) = std::numeric_limits<Scalar>::quiet_NaN();
      }
      INFO("shape " << s.first << " x " << s.second << ", order " << (order == io::NpyOrder::C ? "C" : "F"));
      std::stringstream ss;
      io::write_npy(ss, m, order);
      const Matrix<Scalar> back = io::read_npy<Scalar>(ss);
      CHECK(bitwise_equal(m, back));

      const std::string f = dir.file("m.npy");
      io::write_npy(f, m, order);
      CHECK(bitwise_equal(m, io::read_npy<Scalar>(f)));
      const io::NpyHeader h = io::inspect_npy(f);
      CHECK(h.ndim() == 2);
      CHECK(h.rows() == s.first);
      CHECK(h.cols() == s.second);
      CHECK(h.dtype == (sizeof(Scalar) == 4 ? io::NpyDtype::Float32 : io::NpyDtype::Float64));
      CHECK(h.fortran_order == (order == io::NpyOrder::Fortran));
      CHECK(h.data_offset % 64 == 0);
      CHECK(fs::file_size(f) == h.data_offset + h.data_bytes());
    }
  }
  // No temporary files are left behind by the atomic writes.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) entries += e.path().filename() == "m.npy" ? 0 : 1;
  CHECK(entries == 0);
}

TEST_CASE_TEMPLATE("npy vectors are written 1-D and read back as a column", Scalar, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("npy vectors");
  ScratchDir dir("vectors");
  for (Index n : {Index(0), Index(1), Index(7)}) {
    const Vector<Scalar> v = rng.normal_matrix<Scalar>(n, 1);
    const std::string f = dir.file("v.npy");
    io::write_npy(f, v, io::NpyOrder::Fortran);  // order is irrelevant for 1-D
    const io::NpyHeader h = io::inspect_npy(f);
    CHECK(h.ndim() == 1);
    CHECK(h.shape[0] == n);
    CHECK(!h.fortran_order);
    const Matrix<Scalar> m = io::read_npy<Scalar>(f);
    CHECK(m.rows() == n);
    CHECK(m.cols() == 1);
    CHECK(bitwise_equal(Matrix<Scalar>(v), m));
    CHECK(bitwise_equal(Matrix<Scalar>(v), Matrix<Scalar>(io::read_npy_vector<Scalar>(f))));
    // A row vector type is 1-D as well.
    const colora::RowVector<Scalar> rv = v.transpose();
    io::write_npy(f, rv);
    CHECK(io::inspect_npy(f).ndim() == 1);
    CHECK(bitwise_equal(Matrix<Scalar>(v), io::read_npy<Scalar>(f)));
  }
  // A 2-D file with more than one column is not a vector.
  io::write_npy(dir.file("m.npy"), Matrix<Scalar>::Ones(2, 2));
  CHECK_ERROR(std::runtime_error, io::read_npy_vector<Scalar>(dir.file("m.npy")), "m.npy", "2 x 2");
}

TEST_CASE("npy converts between float32 and float64 on read") {
  auto rng = colora_test::rng_for("npy convert");
  const Matrix<double> d = rng.normal_matrix<double>(4, 3);
  std::stringstream sd;
  io::write_npy(sd, d);
  const Matrix<float> as_float = io::read_npy<float>(sd);
  CHECK(bitwise_equal<float>(as_float, d.cast<float>()));  // rounding to nearest, as a cast

  const Matrix<float> f = rng.normal_matrix<float>(3, 5);
  std::stringstream sf;
  io::write_npy(sf, f, io::NpyOrder::Fortran);
  const Matrix<double> as_double = io::read_npy<double>(sf);
  CHECK(bitwise_equal<double>(as_double, f.cast<double>()));  // exact
}

TEST_CASE("npy writer produces NumPy's header layout") {
  Matrix<double> m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  std::ostringstream os;
  io::write_npy(os, m);
  const std::string bytes = os.str();
  // NumPy >= 1.23: dict, 21 - len("2") growth spaces, padding to 64, '\n'.
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  REQUIRE(bytes.size() == 128 + 48);
  CHECK(bytes.compare(0, 10, std::string("\x93NUMPY\x01\x00\x76\x00", 10)) == 0);  // header length 118
  CHECK(bytes.compare(10, dict.size(), dict) == 0);
  CHECK(bytes.find_first_not_of(' ', 10 + dict.size()) == 127);
  CHECK(bytes[127] == '\n');
  CHECK(bytes.compare(128, 48, le_bytes<double>({1, 2, 3, 4, 5, 6})) == 0);

  // Expressions are evaluated before writing.
  std::stringstream ts;
  io::write_npy(ts, m.transpose());
  CHECK(bitwise_equal<double>(io::read_npy<double>(ts), m.transpose()));
  std::stringstream cs;
  io::write_npy(cs, m.col(1));
  CHECK(io::read_npy_header(cs).ndim() == 1);

  std::ostringstream of;
  io::write_npy(of, m, io::NpyOrder::Fortran);
  const std::string fb = of.str();
  CHECK(fb.compare(10, 58, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }") == 0);
  CHECK(fb.compare(fb.size() - 48, 48, le_bytes<double>({1, 4, 2, 5, 3, 6})) == 0);
}

// ---------------------------------------------------------------------------
// Files as NumPy writes them, bytes spelled out by hand

TEST_CASE("npy reads hand-made NumPy files") {
  Matrix<double> want(2, 3);
  want << 1, 2, 3, 4, 5, 6;

  SUBCASE("float64, C order, version 1.0, header length spelled out") {
    const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
    REQUIRE(dict.size() == 59);
    // 10 + 59 + 58 spaces + '\n' = 128: header length 118 = 0x76.
    std::string file = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict + std::string(58, ' ') + "\n";
    REQUIRE(file.size() == 128);
    file += le_bytes<double>({1, 2, 3, 4, 5, 6});
    std::istringstream in(file);
    CHECK(bitwise_equal(want, io::read_npy<double>(in)));
    CHECK(numpy_file(dict, le_bytes<double>({1, 2, 3, 4, 5, 6})) == file);
  }
  SUBCASE("float64, Fortran order") {
    std::istringstream in(numpy_file(dict_for("<f8", true, "(2, 3)"), le_bytes<double>({1, 4, 2, 5, 3, 6})));
    CHECK(bitwise_equal(want, io::read_npy<double>(in)));
  }
  SUBCASE("float32, C order, read as double") {
    std::istringstream in(numpy_file(dict_for("<f4", false, "(2, 3)"), le_bytes<float>({1, 2, 3, 4, 5, 6})));
    CHECK(bitwise_equal(want, io::read_npy<double>(in)));
  }
  SUBCASE("float32, 1-D") {
    std::istringstream in(numpy_file(dict_for("<f4", false, "(3,)"), le_bytes<float>({1.5f, -2.f, 0.25f})));
    const Matrix<float> m = io::read_npy<float>(in);
    REQUIRE(m.rows() == 3);
    REQUIRE(m.cols() == 1);
    CHECK(m(0, 0) == 1.5f);
    CHECK(m(1, 0) == -2.f);
    CHECK(m(2, 0) == 0.25f);
  }
  SUBCASE("format version 2.0 and 3.0") {
    for (int major : {2, 3}) {
      std::istringstream in(numpy_file(dict_for("<f8", false, "(2, 3)"), le_bytes<double>({1, 2, 3, 4, 5, 6}), major));
      const io::NpyHeader h = io::read_npy_header(in);
      CHECK(h.major_version == major);
      CHECK(h.data_offset % 64 == 0);
      std::istringstream in2(numpy_file(dict_for("<f8", false, "(2, 3)"), le_bytes<double>({1, 2, 3, 4, 5, 6}), major));
      CHECK(bitwise_equal(want, io::read_npy<double>(in2)));
    }
  }
  SUBCASE("NumPy >= 1.23 growth padding, other key order, double quotes, Python 2 longs") {
    for (const std::string& dict :
         {dict_for("<f8", false, "(2, 3)") + std::string(20, ' '),
          std::string("{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}"),
          std::string("{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2L, 3L)}")}) {
      INFO(dict);
      std::istringstream in(numpy_file(dict, le_bytes<double>({1, 2, 3, 4, 5, 6})));
      CHECK(bitwise_equal(want, io::read_npy<double>(in)));
    }
  }
  SUBCASE("0-row and 1 x 1 arrays") {
    std::istringstream e(numpy_file(dict_for("<f8", false, "(0, 4)"), ""));
    const Matrix<double> m0 = io::read_npy<double>(e);
    CHECK(m0.rows() == 0);
    CHECK(m0.cols() == 4);
    std::istringstream one(numpy_file(dict_for("<f8", false, "(1, 1)"), le_bytes<double>({42})));
    const Matrix<double> m1 = io::read_npy<double>(one);
    REQUIRE(m1.size() == 1);
    CHECK(m1(0, 0) == 42);
  }
  SUBCASE("a stream that cannot seek") {
    PipeBuf buf(numpy_file(dict_for("<f8", false, "(2, 3)"), le_bytes<double>({1, 2, 3, 4, 5, 6})));
    std::istream in(&buf);
    CHECK(bitwise_equal(want, io::read_npy<double>(in, "pipe")));
  }
}

// ---------------------------------------------------------------------------
// Rejections: a clear std::runtime_error naming the source and the reason

TEST_CASE("npy rejects what it cannot read, naming the file and the reason") {
  const std::string six = le_bytes<double>({1, 2, 3, 4, 5, 6});
  auto read = [](const std::string& bytes) {
    std::istringstream in(bytes);
    return io::read_npy<double>(in, "bad.npy");
  };
  auto read_pipe = [](const std::string& bytes) {
    PipeBuf buf(bytes);
    std::istream in(&buf);
    return io::read_npy<double>(in, "pipe.npy");
  };

  CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for(">f8", false, "(2, 3)"), six)), "bad.npy", "big-endian",
              "'>f8'");
  for (const char* d : {"<i8", "|b1", "<c16", "|O", "<f2", "<U3"})
    CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for(d, false, "(2, 3)"), six)), "bad.npy", "unsupported dtype",
                d);
  CHECK_ERROR(std::runtime_error,
              read(numpy_file("{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (2, 3), }", six)), "bad.npy",
              "structured");
  // Magic, version.
  CHECK_ERROR(std::runtime_error, read("\x93NUMPX" + numpy_file(dict_for("<f8", false, "(2, 3)"), six).substr(6)),
              "bad.npy", "magic");
  CHECK_ERROR(std::runtime_error, read("PK\x03\x04 this is a zip"), "bad.npy", ".npz");
  CHECK_ERROR(std::runtime_error, read(""), "bad.npy", "empty");
  {
    std::string v4 = numpy_file(dict_for("<f8", false, "(2, 3)"), six);
    v4[6] = 4;
    CHECK_ERROR(std::runtime_error, read(v4), "bad.npy", "version 4.0");
  }
  // Truncations.
  const std::string good = numpy_file(dict_for("<f8", false, "(2, 3)"), six);
  CHECK_ERROR(std::runtime_error, read(good.substr(0, 9)), "bad.npy", "truncated header");
  CHECK_ERROR(std::runtime_error, read(good.substr(0, 40)), "bad.npy", "truncated header");
  CHECK_ERROR(std::runtime_error, read(good.substr(0, good.size() - 8)), "bad.npy", "truncated data", "48 bytes",
              "only 40");
  CHECK_ERROR(std::runtime_error, read_pipe(good.substr(0, good.size() - 8)), "pipe.npy", "truncated data");
  CHECK_ERROR(std::runtime_error, read(good + "junk"), "bad.npy", "trailing bytes", "4 extra");
  CHECK_ERROR(std::runtime_error, read_pipe(good + "junk"), "pipe.npy", "trailing bytes");
  // Shape and size disagree.
  CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for("<f8", false, "(3, 3)"), six)), "bad.npy", "truncated data",
              "(3, 3)");
  CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for("<f8", false, "(2, 2)"), six)), "bad.npy", "trailing bytes",
              "(2, 2)");
  // A lying header must not make the reader allocate terabytes.
  CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for("<f8", false, "(1000000, 1000000)"), six)), "bad.npy",
              "truncated data");
  CHECK_ERROR(std::runtime_error, read_pipe(numpy_file(dict_for("<f8", false, "(1000000, 1000000)"), six)), "pipe.npy",
              "truncated data");
  CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for("<f8", false, "(1099511627776, 1099511627776)"), six)),
              "bad.npy", "absurdly large");
  CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for("<f8", false, "(99999999999999999999, 1)"), six)), "bad.npy",
              "absurdly large");
  // Dimensions.
  CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for("<f8", false, "(1, 2, 3)"), six)), "bad.npy", "ndim = 3");
  CHECK_ERROR(std::runtime_error, read(numpy_file(dict_for("<f8", false, "()"), le_bytes<double>({1}))), "bad.npy",
              "0-d");
  // Bad header dictionaries.
  const std::pair<const char*, const char*> bad_dicts[] = {
      {"{'descr': '<f8', 'shape': (2, 3), }", "'fortran_order' is missing"},
      {"{'descr': '<f8', 'fortran_order': False, }", "'shape' is missing"},
      {"{'fortran_order': False, 'shape': (2, 3), }", "'descr' is missing"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'extra': 1, }", "unexpected key 'extra'"},
      {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", "appears twice"},
      {"{'descr': '<f8', 'fortran_order': maybe, 'shape': (2, 3), }", "True or False"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }", "non-negative integer"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': [2, 3], }", "expected '('"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } x", "after the closing"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)", "expected ',' or '}'"},
      {"{'descr: '<f8', 'fortran_order': False, 'shape': (2, 3), }", "bad header"},
      {"'descr': '<f8'", "expected '{'"},
      {"{'descr': '<f\\x38', 'fortran_order': False, 'shape': (2, 3), }", "escape"},
  };
  for (const auto& bd : bad_dicts)
    CHECK_ERROR(std::runtime_error, read(numpy_file(bd.first, six)), "bad.npy", bd.second);
  {
    std::string nul = numpy_file(dict_for("<f8", false, "(2, 3)"), six);
    nul[20] = '\0';
    CHECK_ERROR(std::runtime_error, read(nul), "bad.npy", "control or NUL");
  }
  // Files: the message names the path.
  ScratchDir dir("reject");
  const std::string f = dir.file("cut.npy");
  {
    std::ofstream out(f, std::ios::binary);
    out << good.substr(0, good.size() - 1);
  }
  CHECK_ERROR(std::runtime_error, io::read_npy<float>(f), f, "truncated data");
  CHECK_ERROR(std::runtime_error, io::read_npy<float>(dir.file("absent.npy")), "absent.npy", "cannot open");
  CHECK_ERROR(std::runtime_error, io::inspect_npy(dir.file("absent.npy")), "absent.npy", "cannot open");
}

TEST_CASE("npy never crashes on truncated or corrupted files") {
  // Every prefix of a valid file, and every single-byte corruption of its
  // header, either reads or throws std::runtime_error (run under ASan/UBSan).
  const std::string good = numpy_file(dict_for("<f4", true, "(3, 2)"), le_bytes<float>({1, 2, 3, 4, 5, 6}));
  for (std::size_t len = 0; len < good.size(); ++len) {
    std::istringstream in(good.substr(0, len));
    CHECK_THROWS_AS(io::read_npy<double>(in), std::runtime_error);
  }
  int read_ok = 0, refused = 0;
  for (std::size_t pos = 0; pos < 128; ++pos) {
    for (unsigned char v : {0x00, 0x20, 0x27, 0x28, 0x29, 0x2c, 0x31, 0x39, 0x7b, 0x7d, 0xff}) {
      std::string bad = good;
      bad[pos] = static_cast<char>(v);
      std::istringstream in(bad);
      try {
        const Matrix<double> m = io::read_npy<double>(in);
        CHECK(m.size() == 6);
        ++read_ok;
      } catch (const std::runtime_error&) {
        ++refused;
      }
    }
  }
  CHECK(read_ok + refused == 128 * 11);
  CHECK(read_ok > 0);  // e.g. a space turned into another space
  CHECK(refused > 0);
}

// ---------------------------------------------------------------------------
// Task directories

namespace {

template <class Scalar>
colora::RegressionProblem<Scalar> small_problem(colora::Rng& rng, bool with_w0, bool with_test) {
  colora::RegressionProblem<Scalar> pb;
  const Index p = 4, q = 3;
  const Index n[] = {5, 7, 3};
  for (Index i = 0; i < 3; ++i) {
    colora::RegressionTask<Scalar> t;
    t.X = rng.normal_matrix<Scalar>(n[i], p);
    t.Y = rng.normal_matrix<Scalar>(n[i], q);
    if (with_test && i != 1) {  // task 1 has no test split
      t.X_test = rng.normal_matrix<Scalar>(2 + i, p);
      t.Y_test = rng.normal_matrix<Scalar>(2 + i, q);
    }
    pb.tasks.push_back(t);
  }
  if (with_w0) pb.W0 = rng.normal_matrix<Scalar>(q, p);
  return pb;
}

template <class Scalar>
void check_same_problem(const colora::RegressionProblem<Scalar>& a, const colora::RegressionProblem<Scalar>& b) {
  REQUIRE(a.num_tasks() == b.num_tasks());
  for (Index i = 0; i < a.num_tasks(); ++i) {
    INFO("task " << i);
    const auto& ta = a.tasks[size_t(i)];
    const auto& tb = b.tasks[size_t(i)];
    CHECK(bitwise_equal(ta.X, tb.X));
    CHECK(bitwise_equal(ta.Y, tb.Y));
    CHECK(ta.test_samples() == tb.test_samples());
    if (ta.test_samples() > 0) {
      CHECK(bitwise_equal(ta.X_test, tb.X_test));
      CHECK(bitwise_equal(ta.Y_test, tb.Y_test));
    }
  }
  CHECK(bitwise_equal(a.W0, b.W0));
}

}  // namespace

TEST_CASE_TEMPLATE("task directory round trip", Scalar, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("task directory round trip");
  ScratchDir dir("taskdir");
  for (bool with_w0 : {false, true}) {
    for (bool with_test : {false, true}) {
      for (const auto order : {io::NpyOrder::C, io::NpyOrder::Fortran}) {
        INFO("W0 " << with_w0 << ", test " << with_test << ", Fortran " << (order == io::NpyOrder::Fortran));
        const auto pb = small_problem<Scalar>(rng, with_w0, with_test);
        const std::string d = (dir.path / "data").string();  // created by save
        io::save_regression_directory(d, pb, order);
        CHECK(fs::exists(dir.path / "data" / "W0.npy") == with_w0);
        CHECK(fs::exists(dir.path / "data" / "X_test_0.npy") == with_test);
        CHECK(!fs::exists(dir.path / "data" / "X_test_1.npy"));
        const auto back = io::load_regression_directory<Scalar>(d);
        check_same_problem(pb, back);
        CHECK(back.input_dim() == 4);
        CHECK(back.output_dim() == 3);
      }
    }
  }
  // Saving a smaller problem over a larger one leaves no stale task files.
  auto pb = small_problem<Scalar>(rng, true, true);
  const std::string d = (dir.path / "data").string();
  io::save_regression_directory(d, pb);
  std::ofstream(dir.path / "data" / "notes.txt") << "kept";
  pb.tasks.pop_back();
  pb.W0.resize(0, 0);
  io::save_regression_directory(d, pb);
  CHECK(!fs::exists(dir.path / "data" / "X_2.npy"));
  CHECK(!fs::exists(dir.path / "data" / "X_test_2.npy"));
  CHECK(!fs::exists(dir.path / "data" / "W0.npy"));
  CHECK(fs::exists(dir.path / "data" / "notes.txt"));
  check_same_problem(pb, io::load_regression_directory<Scalar>(d));
}

TEST_CASE("task directory accepts 1-D Y, either dtype, and ignores other files") {
  auto rng = colora_test::rng_for("task directory 1-D Y");
  ScratchDir dir("oned");
  const Matrix<double> X0 = rng.normal_matrix<double>(6, 3), X1 = rng.normal_matrix<double>(4, 3);
  const Vector<float> y0 = rng.normal_matrix<float>(6, 1), y1 = rng.normal_matrix<float>(4, 1);
  io::write_npy(dir.file("X_0.npy"), X0);
  io::write_npy(dir.file("X_1.npy"), X1, io::NpyOrder::Fortran);
  io::write_npy(dir.file("Y_0.npy"), y0);  // 1-D float32
  io::write_npy(dir.file("Y_1.npy"), y1);
  io::write_npy(dir.file("A.npy"), X0);        // a fit result: not part of the layout
  io::write_npy(dir.file("X_train.npy"), X0);  // not ours either
  const auto pb = io::load_regression_directory<double>(dir.path.string());
  REQUIRE(pb.num_tasks() == 2);
  CHECK(pb.output_dim() == 1);
  CHECK(bitwise_equal(pb.tasks[0].X, X0));
  CHECK(bitwise_equal(pb.tasks[1].X, X1));
  CHECK(bitwise_equal<double>(pb.tasks[0].Y, y0.cast<double>()));
  CHECK(bitwise_equal<double>(pb.tasks[1].Y, y1.cast<double>()));
  CHECK(pb.W0.size() == 0);
  CHECK(!pb.has_test());
}

TEST_CASE("task directory errors name the file") {
  auto rng = colora_test::rng_for("task directory errors");
  ScratchDir dir("errors");
  const auto pb = small_problem<double>(rng, true, true);
  const std::string d = dir.path.string();
  auto load = [&] { return io::load_regression_directory<double>(d); };
  auto fresh = [&] {
    fs::remove_all(dir.path);
    io::save_regression_directory(d, pb);
  };
  using E = std::runtime_error;

  fresh();
  fs::remove(dir.path / "Y_2.npy");
  CHECK_ERROR(E, load(), d, "Y_2.npy is missing");

  fresh();
  fs::remove(dir.path / "X_1.npy");
  CHECK_ERROR(E, load(), "X_1.npy is missing", "X_2.npy exists", "without gaps");

  fresh();
  fs::remove(dir.path / "X_0.npy");
  CHECK_ERROR(E, load(), "X_0.npy is missing");

  fresh();
  io::write_npy(dir.file("Y_5.npy"), pb.tasks[0].Y);
  CHECK_ERROR(E, load(), "Y_5.npy has no matching X_5.npy");

  fresh();
  io::write_npy(dir.file("Y_1.npy"), Matrix<double>::Ones(6, 3));  // X_1 has 7 rows
  CHECK_ERROR(E, load(), "Y_1.npy", "rows", "is 6 but expected 7", "X_1.npy");

  fresh();
  io::write_npy(dir.file("Y_1.npy"), Matrix<double>::Ones(7, 2));  // q = 3
  CHECK_ERROR(E, load(), "Y_1.npy", "columns (q)", "is 2 but expected 3");

  fresh();
  io::write_npy(dir.file("X_2.npy"), Matrix<double>::Ones(3, 5));  // p = 4
  CHECK_ERROR(E, load(), "X_2.npy", "columns (p)", "is 5 but expected 4");

  fresh();
  io::write_npy(dir.file("X_2.npy"), Vector<double>::Ones(3));
  CHECK_ERROR(E, load(), "X_2.npy is 1-D");

  fresh();
  io::write_npy(dir.file("W0.npy"), Matrix<double>::Ones(4, 3));  // transposed
  CHECK_ERROR(E, load(), "W0.npy", "4 x 3", "q x p = 3 x 4");

  fresh();
  fs::remove(dir.path / "Y_test_2.npy");
  CHECK_ERROR(E, load(), "Y_test_2.npy is missing", "X_test_2.npy exists");

  fresh();
  io::write_npy(dir.file("Y_test_0.npy"), Matrix<double>::Ones(3, 3));  // X_test_0 has 2 rows
  CHECK_ERROR(E, load(), "Y_test_0.npy", "rows", "is 3 but expected 2");

  fresh();
  io::write_npy(dir.file("X_test_9.npy"), pb.tasks[0].X_test);
  io::write_npy(dir.file("Y_test_9.npy"), pb.tasks[0].Y_test);
  CHECK_ERROR(E, load(), "X_test_9.npy is for task 9", "k = 3");

  fresh();
  io::write_npy(dir.file("X_01.npy"), pb.tasks[0].X);
  CHECK_ERROR(E, load(), "X_01.npy", "leading zeros");

  fresh();
  Matrix<double> X1 = pb.tasks[1].X;
  X1(2, 1) = std::numeric_limits<double>::quiet_NaN();
  io::write_npy(dir.file("X_1.npy"), X1);
  CHECK_ERROR(E, load(), "X_1.npy", "non-finite", "row 2, column 1");

  fresh();
  io::write_npy(dir.file("X_1.npy"), Matrix<double>(0, 4));
  io::write_npy(dir.file("Y_1.npy"), Matrix<double>(0, 3));
  CHECK_ERROR(E, load(), "X_1.npy", "0 rows");

  fresh();
  {
    std::ofstream out(dir.path / "Y_0.npy", std::ios::binary);
    out << "\x93NUMPY garbage";
  }
  CHECK_ERROR(E, load(), "Y_0.npy", "unsupported .npy format version");

  CHECK_ERROR(E, io::load_regression_directory<double>((dir.path / "nope").string()), "nope", "not a directory");
  fs::remove_all(dir.path);
  fs::create_directories(dir.path);
  CHECK_ERROR(E, load(), "X_0.npy is missing");

  // Saving an invalid problem is a contract violation.
  auto broken = pb;
  broken.tasks[1].Y.resize(2, 3);
  CHECK_ERROR(std::invalid_argument, io::save_regression_directory(d, broken), "task 1");
}

TEST_CASE_TEMPLATE("save_matrices writes named matrices atomically", Scalar, COLORA_TEST_SCALARS) {
  auto rng = colora_test::rng_for("save_matrices");
  ScratchDir dir("matrices");
  const Matrix<Scalar> A = rng.normal_matrix<Scalar>(2, 5), B = rng.normal_matrix<Scalar>(4, 2);
  std::vector<std::pair<std::string, Matrix<Scalar>>> named = {{"A", A}, {"B", B}};
  std::vector<Matrix<Scalar>> S;
  for (Index i = 0; i < 3; ++i) {
    S.push_back(rng.normal_matrix<Scalar>(2, 2));
    named.emplace_back(io::indexed_name("S", i), S.back());
  }
  const std::string out = (dir.path / "fit").string();
  io::save_matrices(out, named);
  CHECK(bitwise_equal(A, io::read_npy<Scalar>(out + "/A.npy")));
  CHECK(bitwise_equal(B, io::read_npy<Scalar>(out + "/B.npy")));
  for (Index i = 0; i < 3; ++i)
    CHECK(bitwise_equal(S[size_t(i)], io::read_npy<Scalar>(out + "/S_" + std::to_string(i) + ".npy")));
  int files = 0;
  for (const auto& e : fs::directory_iterator(out)) files += e.path().extension() == ".npy" ? 1 : 100;
  CHECK(files == 5);  // no temporaries left

  for (const char* bad : {"", "../A", "a/b", ".hidden", "sp ace"})
    CHECK_ERROR(std::invalid_argument, io::save_matrices<Scalar>(out, {{bad, A}}), "save_matrices", "not a plain");
  CHECK_ERROR(std::invalid_argument, io::save_matrices<Scalar>(out, {{"A", A}, {"A", B}}), "used twice");
}

// ---- File kinds in the task directory, atomic and durable writes ----------

TEST_CASE("task directory: a layout name that is not a regular file is named with its kind") {
  auto rng = colora_test::rng_for("task directory file kinds");
  ScratchDir dir("kinds");
  const auto pb = small_problem<double>(rng, false, false);
  const std::string d = dir.path.string();
  auto load = [&] { return io::load_regression_directory<double>(d); };
  auto fresh = [&] {
    fs::remove_all(dir.path);
    io::save_regression_directory(d, pb);
  };
  using E = std::runtime_error;

  // A symlink loop: X_0.npy -> loop.npy -> X_0.npy.
  fresh();
  fs::remove(dir.path / "X_0.npy");
  fs::create_symlink("loop.npy", dir.path / "X_0.npy");
  fs::create_symlink("X_0.npy", dir.path / "loop.npy");
  CHECK_ERROR(E, load(), d, "X_0.npy is a symbolic link that cannot be resolved");
  // A dangling symlink.
  fs::remove(dir.path / "loop.npy");
  CHECK_ERROR(E, load(), "X_0.npy is a symbolic link that cannot be resolved");

  // A directory named X_0.npy.
  fresh();
  fs::remove(dir.path / "X_0.npy");
  fs::create_directory(dir.path / "X_0.npy");
  CHECK_ERROR(E, load(), "X_0.npy is a directory");

  // A FIFO named Y_0.npy next to a valid X_0.npy: never opened (that would block).
  fresh();
  fs::remove(dir.path / "Y_0.npy");
  REQUIRE(::mkfifo((dir.path / "Y_0.npy").c_str(), 0600) == 0);
  CHECK_ERROR(E, load(), "Y_0.npy is a FIFO (named pipe)");

  // Names outside the layout stay ignored whatever they are; a symlink to a regular file is fine.
  fresh();
  REQUIRE(::mkfifo((dir.path / "notes.fifo").c_str(), 0600) == 0);
  fs::create_directory(dir.path / "X_extra.npy");
  fs::create_symlink("self", dir.path / "self");
  fs::rename(dir.path / "X_1.npy", dir.path / "real_X_1.bin");
  fs::create_symlink("real_X_1.bin", dir.path / "X_1.npy");
  CHECK(load().num_tasks() == pb.num_tasks());
}

namespace {

/// The whole content of a file.
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

/// Names of the entries of `dir`, sorted.
std::vector<std::string> entries_of(const fs::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

/// True if `name` is "<base>.tmp.<pid>.<hex>" (the temporary-name pattern).
bool is_temporary_of(const std::string& name, const std::string& base, pid_t pid) {
  const std::string prefix = base + ".tmp." + std::to_string(pid) + ".";
  if (name.compare(0, prefix.size(), prefix) != 0 || name.size() == prefix.size()) return false;
  return std::all_of(name.begin() + std::ptrdiff_t(prefix.size()), name.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

/// The pid of a process that has exited and been reaped.
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(::kill(child, 0) == -1);
  return child;
}

}  // namespace

TEST_CASE("write_file_atomically: the temporary is <name>.tmp.<pid>.<hex> next to the target") {
  ScratchDir dir("atomic_name");
  const std::string target = dir.file("out.csv");
  std::vector<std::string> seen;
  io::write_file_atomically(target, [&](std::ostream& os) {
    seen = entries_of(dir.path);
    os << "hello\n";
  });
  REQUIRE(seen.size() == 1);
  CHECK(is_temporary_of(seen[0], "out.csv", ::getpid()));
  CHECK(seen[0].size() == std::string("out.csv.tmp.").size() + std::to_string(::getpid()).size() + 1 + 16);
  CHECK(entries_of(dir.path) == std::vector<std::string>{"out.csv"});
  CHECK(slurp(target) == "hello\n");
}

TEST_CASE("write_file_atomically: stale temporaries of dead processes are removed, nothing else") {
  ScratchDir dir("atomic_stale");
  const pid_t dead = dead_pid(), me = ::getpid();
  const std::string d = std::to_string(dead), self = std::to_string(me);
  // A directory's stale temporaries go on the first write into it by this
  // process, whatever their target; the live one and non-matching names stay.
  const std::vector<std::string> stale = {"t.npy.tmp." + d + ".0123456789abcdef",
                                          "u.npy.tmp." + d + ".0123456789abcdef",
                                          "xt.npy.tmp." + d + ".0123456789abcdef"};
  const std::vector<std::string> kept = {
      "t.npy.tmp." + self + ".fedcba9876543210",     // a live writer (this process)
      "t.npy.tmp.notapid",                           // not the pattern
      "t.npy.tmp." + d + ".0123456789abcdef.png",    // not the pattern (suffix)
      "t.npy.tmp." + d + ".xyz",                     // not hex
      "t.npy.tmp." + d,                              // no random part
      "t.npy.tmp." + d + ".0123456789abcdef" + "0",  // 17 hex digits
      "t.npy.bak",
  };
  for (const auto& f : stale) std::ofstream(dir.file(f)) << "stale";
  for (const auto& f : kept) std::ofstream(dir.file(f)) << "keep";
  io::write_text_atomically(dir.file("t.npy"), "new");
  std::vector<std::string> expected = kept;
  expected.push_back("t.npy");
  std::sort(expected.begin(), expected.end());
  CHECK(entries_of(dir.path) == expected);
  CHECK(slurp(dir.file("t.npy")) == "new");
}

TEST_CASE("write_file_atomically: a failing writer leaves the old content and no temporary") {
  ScratchDir dir("atomic_fail");
  const std::string target = dir.file("keep.txt");
  io::write_text_atomically(target, "old content\n");
  CHECK_THROWS_AS(io::write_file_atomically(target,
                                            [](std::ostream& os) {
                                              os << "partial";
                                              throw std::runtime_error("writer failed");
                                            }),
                  std::runtime_error);
  CHECK(entries_of(dir.path) == std::vector<std::string>{"keep.txt"});
  CHECK(slurp(target) == "old content\n");
  // A stream that goes bad (badbit set by the writer) is a failure too, naming the target.
  CHECK_ERROR(std::runtime_error,
              io::write_file_atomically(target,
                                        [](std::ostream& os) {
                                          os << "x";
                                          os.setstate(std::ios::badbit);
                                        }),
              target);
  CHECK(entries_of(dir.path) == std::vector<std::string>{"keep.txt"});
  CHECK(slurp(target) == "old content\n");
  // A directory that does not exist: the error names the target.
  CHECK_ERROR(std::runtime_error, io::write_text_atomically(dir.file("no/such/dir.txt"), "x"), "dir.txt");
}

TEST_CASE("write_file_atomically: two processes writing one target never leave a torn file") {
  ScratchDir dir("atomic_race");
  const std::string target = dir.file("race.bin");
  const std::size_t size = 256 * 1024;
  const std::string a(size, 'a'), b(size, 'b');
  io::write_text_atomically(target, a);
  constexpr int kWrites = 60;
  // Each process writes its own content many times and checks after each write
  // that the file holds exactly one writer's content.
  auto hammer = [&](const std::string& mine) {
    int torn = 0;
    for (int i = 0; i < kWrites; ++i) {
      io::write_text_atomically(target, mine);
      const std::string got = slurp(target);
      torn += (got != a && got != b) ? 1 : 0;
    }
    return torn;
  };
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int torn = 0;
    try {
      torn = hammer(b);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(torn == 0 ? 0 : 2);
  }
  const int torn = hammer(a);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(torn == 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  const std::string last = slurp(target);
  CHECK((last == a || last == b));
  CHECK(entries_of(dir.path) == std::vector<std::string>{"race.bin"});
}
