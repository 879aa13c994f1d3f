// kiln_compare: compares output tensors (ONNX TensorProto .pb files) with expected ones.
//
//   kiln_compare [--rtol R] [--atol A] GOT WANT
// GOT and WANT are two .pb files, or two folders whose output_<k>.pb files are compared pairwise
// (every file of WANT must exist in GOT). An element passes when |got - want| <= atol + rtol*|want|;
// NaN matches NaN, infinities must be equal, integers and booleans must match exactly.
// Prints one line per tensor (worst element) and exits 0 when all match, 1 otherwise, 2 on bad use.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace fs = std::filesystem;

namespace {

struct Tolerance {
  double rtol = 1e-3, atol = 1e-4;
};

// Returns true when `got` matches `want`; prints a one-line verdict naming the worst element.
bool compare_tensor(const std::string& label, const kiln::HostTensor& got, const kiln::HostTensor& want,
                    const Tolerance& tol) {
  if (got.dtype != want.dtype || got.shape != want.shape) {
    std::printf("FAIL %s: got %s%s, expected %s%s\n", label.c_str(), kiln::dtype_name(got.dtype),
                kiln::shape_str(got.shape).c_str(), kiln::dtype_name(want.dtype), kiln::shape_str(want.shape).c_str());
    return false;
  }
  const bool exact = !kiln::dtype_is_float(want.dtype);
  int64_t bad = 0, worst = -1;
  double worst_excess = 0, max_abs = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    double g = got.get_f64(i), w = want.get_f64(i);
    bool ok;
    if (exact) ok = got.get_i64(i) == want.get_i64(i);
    else if (std::isnan(w) || std::isinf(w)) ok = std::isnan(w) ? std::isnan(g) : g == w;
    else ok = std::fabs(g - w) <= tol.atol + tol.rtol * std::fabs(w);
    if (!std::isnan(g - w)) max_abs = std::max(max_abs, std::fabs(g - w));
    if (ok) continue;
    ++bad;
    double excess = std::isnan(g) ? INFINITY : std::fabs(g - w) - tol.rtol * std::fabs(w);
    if (worst < 0 || excess > worst_excess) worst = i, worst_excess = excess;
  }
  if (bad == 0) {
    std::printf("ok   %s: %s%s, max |diff| %.3g\n", label.c_str(), kiln::dtype_name(want.dtype),
                kiln::shape_str(want.shape).c_str(), max_abs);
    return true;
  }
  std::printf("FAIL %s: %lld of %lld elements differ (rtol %g, atol %g); worst [%lld] = %.7g, expected %.7g\n",
              label.c_str(), (long long)bad, (long long)want.numel(), tol.rtol, tol.atol, (long long)worst,
              got.get_f64(worst), want.get_f64(worst));
  return false;
}

std::vector<std::pair<fs::path, fs::path>> pairs_to_compare(const fs::path& got, const fs::path& want) {
  if (!fs::is_directory(want)) return {{got, want}};
  std::vector<std::pair<fs::path, fs::path>> pairs;
  for (int k = 0;; ++k) {
    std::string file = "output_" + std::to_string(k) + ".pb";
    if (!fs::exists(want / file)) break;
    pairs.push_back({got / file, want / file});
  }
  if (pairs.empty()) kiln::fail(want.string(), ": no output_<k>.pb files");
  return pairs;
}

}  // namespace

int main(int argc, char** argv) {
  Tolerance tol;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--rtol" || a == "--atol") && i + 1 < argc) (a == "--rtol" ? tol.rtol : tol.atol) = std::stod(argv[++i]);
    else paths.push_back(a);
  }
  if (paths.size() != 2) {
    std::fprintf(stderr, "usage: kiln_compare [--rtol R] [--atol A] GOT WANT   (files or output folders)\n");
    return 2;
  }
  try {
    bool all_ok = true;
    for (auto& [got, want] : pairs_to_compare(paths[0], paths[1])) {
      if (!fs::exists(got)) {
        std::printf("FAIL %s: missing (kiln wrote no such output)\n", got.string().c_str());
        all_ok = false;
        continue;
      }
      all_ok &= compare_tensor(want.filename().string(), kiln::load_tensor(got.string()),
                               kiln::load_tensor(want.string()), tol);
    }
    return all_ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_compare: %s\n", e.what());
    return 2;
  }
}
