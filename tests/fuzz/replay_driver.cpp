// A libFuzzer-compatible driver that needs no clang: replays a seed corpus, then feeds a fixed
// sequence of mutated inputs (seeded PRNG, so every run tests the same inputs) to
// LLVMFuzzerTestOneInput. Used by the `fuzz_loader` ctest; scripts/fuzz.sh runs real libFuzzer.
//
//   fuzz_loader_replay [--runs N] [--seconds S] [--seed K] [--crash FILE] CORPUS_DIR_OR_FILE...
// Stops after N mutated inputs or S seconds, whichever comes first. An input that makes the
// target throw anything but kiln::Error, or crash, is written to FILE (default fuzz-crash.onnx)
// and the driver exits non-zero.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Optional: a target may count its outcomes (imported, refused) for the summary line.
extern "C" __attribute__((weak)) long kiln_fuzz_outcomes[2];

namespace fs = std::filesystem;

namespace {

using Bytes = std::string;

// The input under test, for the crash handler (which may only use async-signal-safe calls).
const Bytes* g_current = nullptr;
const char* g_crash_path = "fuzz-crash.onnx";

void save_current_input() {
  if (!g_current) return;
  int fd = open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  (void)!write(fd, g_current->data(), g_current->size());
  close(fd);
}

extern "C" void on_fatal_signal(int sig) {
  save_current_input();
  const char msg[] = "fuzz_loader_replay: the target crashed; input saved\n";
  (void)!write(2, msg, sizeof msg - 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

// Runs one input; returns false (after saving it) when the target threw something unexpected.
bool run_one(const Bytes& input) {
  g_current = &input;
  try {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  } catch (const std::exception& e) {
    save_current_input();
    std::fprintf(stderr, "fuzz_loader_replay: unexpected exception (%zu-byte input saved to %s): %s\n",
                 input.size(), g_crash_path, e.what());
    return false;
  } catch (...) {
    save_current_input();
    std::fprintf(stderr, "fuzz_loader_replay: unexpected non-std exception (input saved to %s)\n", g_crash_path);
    return false;
  }
  g_current = nullptr;
  return true;
}

// libFuzzer-style mutations of a corpus entry: bit flips, byte edits, protobuf-flavoured
// varint values, insertions, erasures, truncation, chunk duplication and splicing.
class Mutator {
 public:
  Mutator(const std::vector<Bytes>& corpus, uint32_t seed) : corpus_(corpus), rng_(seed) {}

  Bytes next() {
    Bytes b = corpus_[pick(corpus_.size())];
    int edits = 1 + int(pick(4));
    for (int i = 0; i < edits; ++i) mutate(b);
    return b;
  }

 private:
  size_t pick(size_t n) { return n ? size_t(rng_() % n) : 0; }

  void mutate(Bytes& b) {
    switch (pick(b.empty() ? 2 : 9)) {
      case 0: b.insert(pick(b.size() + 1), 1, char(rng_())); break;
      case 1: splice(b); break;
      case 2: b[pick(b.size())] ^= char(1u << pick(8)); break;
      case 3: b[pick(b.size())] = char(rng_()); break;
      case 4: b.erase(pick(b.size()), 1 + pick(std::min<size_t>(b.size(), 16))); break;
      case 5: b.resize(pick(b.size())); break;
      case 6: {  // a large or boundary varint where a length or value was
        static const char* kVarints[] = {"\xff\xff\xff\xff\x0f", "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
                                         "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\x00", "\x7f", "\x80\x01"};
        const char* v = kVarints[pick(std::size(kVarints))];
        b.replace(pick(b.size()), 1, v, std::max<size_t>(1, std::strlen(v)));
        break;
      }
      case 7: {  // duplicate a chunk in place (repeated fields, nested messages)
        size_t at = pick(b.size()), len = 1 + pick(std::min<size_t>(b.size() - at, 32));
        b.insert(at, b.substr(at, len));
        break;
      }
      default: splice(b); break;
    }
  }

  void splice(Bytes& b) {
    const Bytes& other = corpus_[pick(corpus_.size())];
    if (other.empty()) return;
    size_t from = pick(other.size()), len = 1 + pick(other.size() - from);
    b.insert(pick(b.size() + 1), other, from, len);
  }

  const std::vector<Bytes>& corpus_;
  std::mt19937 rng_;
};

std::vector<Bytes> load_corpus(const std::vector<std::string>& paths) {
  std::vector<fs::path> files;
  for (auto& p : paths) {
    if (fs::is_directory(p)) {
      for (auto& e : fs::directory_iterator(p))
        if (e.is_regular_file() && e.path().extension() == ".onnx") files.push_back(e.path());
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());  // the mutation sequence must not depend on readdir order
  std::vector<Bytes> corpus;
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return corpus;
}

}  // namespace

int main(int argc, char** argv) {
  long runs = 20000, seconds = 30;
  uint32_t seed = 1;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::stol(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::stol(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = uint32_t(std::stoul(argv[++i]));
    else if (a == "--crash" && i + 1 < argc) g_crash_path = argv[++i];
    else paths.push_back(a);
  }
  std::vector<Bytes> corpus = load_corpus(paths);
  if (corpus.empty()) {
    std::fprintf(stderr, "usage: fuzz_loader_replay [--runs N] [--seconds S] [--seed K] [--crash FILE] CORPUS...\n"
                         "(no .onnx corpus files found)\n");
    return 2;
  }
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) signal(sig, on_fatal_signal);

  for (auto& c : corpus)
    if (!run_one(c)) return 1;
  Mutator mutator(corpus, seed);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  long done = 0;
  for (; done < runs && std::chrono::steady_clock::now() < deadline; ++done)
    if (!run_one(mutator.next())) return 1;
  std::printf("fuzz_loader_replay: %zu corpus inputs and %ld mutated inputs (seed %u) ran without a finding\n",
              corpus.size(), done, seed);
  if (kiln_fuzz_outcomes)
    std::printf("  outcomes: %ld imported, %ld refused with kiln::Error\n", kiln_fuzz_outcomes[0], kiln_fuzz_outcomes[1]);
  return 0;
}
