// ONNX backend conformance runner: compiles and runs every case under the given data folders
// (model.onnx + test_data_set_N/{input,output}_K.pb) and compares with the expected outputs
// using ONNX's backend-test tolerances (rtol 1e-3, atol 1e-7). Each case runs in a forked
// child with a time limit, so a crash or hang fails that case only.
//
//   kiln_conformance [--report FILE.md] [--title T] [--filter SUBSTR] [--min-pass [SUITE=]RATE]... DIR...
// Exit code 1 when the pass rate over all cases, or of a named suite (folder), is below its
// --min-pass (default 0). KILN_TEST_THREADS=N compiles every case for N threads (default 1).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace fs = std::filesystem;

namespace {

constexpr double kRtol = 1e-3, kAtol = 1e-7;
constexpr int kTimeoutSec = 60;

struct Result {
  std::string suite, name, status, reason;  // status: pass | fail | unsupported
  std::vector<std::string> ops;
};

std::string compare(const kiln::HostTensor& got, const kiln::HostTensor& want, size_t k) {
  if (got.dtype != want.dtype)
    return "output " + std::to_string(k) + ": type " + kiln::dtype_name(got.dtype) + ", expected " + kiln::dtype_name(want.dtype);
  if (got.shape != want.shape)
    return "output " + std::to_string(k) + ": shape " + kiln::shape_str(got.shape) + ", expected " + kiln::shape_str(want.shape);
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.get_f64(i), w = want.get_f64(i);
    if (got.dtype == kiln::DType::I64 || got.dtype == kiln::DType::U64) {
      if (got.get_i64(i) != want.get_i64(i)) return "output " + std::to_string(k) + "[" + std::to_string(i) + "] = " + std::to_string(got.get_i64(i)) + ", expected " + std::to_string(want.get_i64(i));
      continue;
    }
    if (std::isnan(w) && std::isnan(g)) continue;
    if (std::isinf(w) && g == w) continue;
    if (!(std::fabs(g - w) <= kAtol + kRtol * std::fabs(w))) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "output %zu[%lld] = %.7g, expected %.7g", k, (long long)i, g, w);
      return buf;
    }
  }
  return "";
}

// Runs in the child: "pass", or "fail\treason", or "unsupported\treason".
std::string run_case(const fs::path& dir) {
  try {
    std::vector<fs::path> sets;
    for (auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
    std::sort(sets.begin(), sets.end());
    if (sets.empty()) return "fail\tno test data sets";
    std::string model = (dir / "model.onnx").string();
    auto load_set = [](const fs::path& s, const char* prefix) {
      std::vector<kiln::HostTensor> v;
      for (int i = 0; fs::exists(s / (std::string(prefix) + std::to_string(i) + ".pb")); ++i)
        v.push_back(kiln::load_tensor((s / (std::string(prefix) + std::to_string(i) + ".pb")).string()));
      return v;
    };
    auto infos = kiln::read_model_inputs(model);
    for (auto& s : sets) {
      auto inputs = load_set(s, "input_");
      auto expected = load_set(s, "output_");
      if (infos.size() != inputs.size()) return "fail\tinput count mismatch";
      kiln::CompileOptions opts;
      opts.log = [](const std::string&) {};
      if (const char* t = std::getenv("KILN_TEST_THREADS")) opts.threads = std::atoi(t);
      for (size_t i = 0; i < infos.size(); ++i) {
        // ONNX 1.12's test data stores bfloat16 tensors as uint16 bit patterns.
        if (inputs[i].dtype == kiln::DType::U16 && infos[i].dtype == kiln::DType::BF16) inputs[i].dtype = kiln::DType::BF16;
        opts.shapes[infos[i].name] = inputs[i].shape;
        opts.input_values[infos[i].name] = inputs[i];
      }
      kiln::Model m = kiln::Model::compile_file(model, opts);
      auto outs = m.run(inputs);
      if (outs.size() < expected.size()) return "fail\tfewer outputs than expected";
      for (size_t k = 0; k < expected.size(); ++k) {
        if (expected[k].dtype == kiln::DType::U16 && outs[k].dtype == kiln::DType::BF16) expected[k].dtype = kiln::DType::BF16;
        std::string d = compare(outs[k], expected[k], k);
        if (!d.empty()) return "fail\t" + d;
      }
    }
    return "pass";
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (char& c : msg) if (c == '\n' || c == '\t') c = ' ';
    bool unsupported = msg.find("unsupported operator") != std::string::npos ||
                       msg.find("not supported") != std::string::npos ||
                       msg.find("not a tensor") != std::string::npos ||
                       msg.find("does not support") != std::string::npos;
    return std::string(unsupported ? "unsupported" : "fail") + "\t" + msg;
  }
}

Result run_forked(const fs::path& dir) {
  int fds[2];
  if (pipe(fds) != 0) return {"", "", "fail", "pipe failed", {}};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(kTimeoutSec);
    std::string r = run_case(dir);
    (void)!write(fds[1], r.data(), r.size());
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  if (WIFSIGNALED(status)) {
    r.status = "fail";
    r.reason = WTERMSIG(status) == SIGALRM ? "timed out" : std::string("crashed with signal ") + strsignal(WTERMSIG(status));
    return r;
  }
  auto tab = out.find('\t');
  r.status = out.substr(0, tab);
  if (tab != std::string::npos) r.reason = out.substr(tab + 1);
  if (r.status.empty()) { r.status = "fail"; r.reason = "no result"; }
  return r;
}

std::vector<std::string> model_ops(const fs::path& dir) {
  try {
    auto s = kiln::summarize_model((dir / "model.onnx").string());
    std::vector<std::string> v;
    for (auto& kv : s.op_counts) v.push_back(kv.first);
    return v;
  } catch (...) {
    return {"?"};
  }
}

std::string md_escape(std::string s) {
  std::string r;
  for (char c : s) {
    if (c == '|') r += "\\|";
    else r += c;
  }
  if (r.size() > 200) r = r.substr(0, 200) + "...";
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string report, title = "ONNX conformance", filter;
  double min_pass = 0;
  std::map<std::string, double> suite_min_pass;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--report" && i + 1 < argc) report = argv[++i];
    else if (a == "--title" && i + 1 < argc) title = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "--min-pass" && i + 1 < argc) {
      std::string v = argv[++i];
      auto eq = v.find('=');
      if (eq == std::string::npos) min_pass = std::stod(v);
      else suite_min_pass[v.substr(0, eq)] = std::stod(v.substr(eq + 1));
    }
    else dirs.push_back(a);
  }
  std::vector<Result> results;
  auto t0 = std::chrono::steady_clock::now();
  for (auto& d : dirs) {
    if (!fs::is_directory(d)) {
      std::fprintf(stderr, "conformance: %s: not a directory\n", d.c_str());
      return 2;
    }
    std::vector<fs::path> cases;
    for (auto& e : fs::directory_iterator(d))
      if (fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
    std::sort(cases.begin(), cases.end());
    std::string suite = fs::path(d).filename().string();
    for (auto& c : cases) {
      if (!filter.empty() && c.filename().string().find(filter) == std::string::npos) continue;
      Result r = run_forked(c);
      r.suite = suite;
      r.name = c.filename().string();
      r.ops = model_ops(c);
      results.push_back(r);
      if (r.status != "pass") std::printf("%-12s %s/%s: %s\n", r.status.c_str(), suite.c_str(), r.name.c_str(), r.reason.substr(0, 160).c_str());
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::map<std::string, std::array<int, 3>> per_suite;  // pass, fail, unsupported
  std::map<std::string, std::array<int, 3>> per_op;
  for (auto& r : results) {
    int k = r.status == "pass" ? 0 : r.status == "fail" ? 1 : 2;
    per_suite[r.suite][k]++;
    for (auto& op : r.ops) per_op[op][k]++;
  }
  int total = int(results.size()), passed = 0;
  for (auto& r : results) passed += r.status == "pass";
  for (auto& kv : per_suite)
    std::printf("%s: %d passed, %d failed, %d unsupported of %d\n", kv.first.c_str(), kv.second[0], kv.second[1],
                kv.second[2], kv.second[0] + kv.second[1] + kv.second[2]);
  std::printf("conformance: %d passed, %d failed\n", passed, total - passed);

  if (!report.empty()) {
    std::ofstream md(report);
    md << "# " << title << "\n\nGenerated by `kiln_conformance` (tests/conformance.cpp); do not edit by hand.\n"
       << "Tolerances: rtol " << kRtol << ", atol " << kAtol << " (ONNX backend-test defaults). "
       << "A case kiln does not support counts as not passed. Run time: " << int(secs) << " s.\n\n"
       << "| suite | passed | failed | unsupported | total | pass rate |\n|---|---|---|---|---|---|\n";
    for (auto& kv : per_suite) {
      int t = kv.second[0] + kv.second[1] + kv.second[2];
      char rate[32];
      std::snprintf(rate, sizeof rate, "%.1f%%", 100.0 * kv.second[0] / std::max(1, t));
      md << "| " << kv.first << " | " << kv.second[0] << " | " << kv.second[1] << " | " << kv.second[2] << " | " << t << " | " << rate << " |\n";
    }
    md << "\n## Per operator\n\n| op | passed | failed | unsupported |\n|---|---|---|---|\n";
    for (auto& kv : per_op) md << "| " << kv.first << " | " << kv.second[0] << " | " << kv.second[1] << " | " << kv.second[2] << " |\n";
    md << "\n## Cases not passed\n\n| suite | case | status | reason |\n|---|---|---|---|\n";
    for (auto& r : results)
      if (r.status != "pass") md << "| " << r.suite << " | " << r.name << " | " << r.status << " | " << md_escape(r.reason) << " |\n";
  }
  int rc = 0;
  double rate = total ? double(passed) / total : 0;
  if (rate + 1e-12 < min_pass) {
    std::printf("conformance: pass rate %.3f is below the required %.3f\n", rate, min_pass);
    rc = 1;
  }
  for (auto& [suite, floor] : suite_min_pass) {
    auto c = per_suite[suite];
    int t = c[0] + c[1] + c[2];
    double r = t ? double(c[0]) / t : 0;
    if (r + 1e-12 < floor) {
      std::printf("conformance: %s pass rate %.3f is below the required %.3f\n", suite.c_str(), r, floor);
      rc = 1;
    }
  }
  return rc;
}
