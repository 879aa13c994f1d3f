// Fuzz target for kiln's model loader (onnx_import::import_bytes: protobuf parsing, ONNX checker,
// graph import). Any input must either import or raise kiln::Error; every other exception, and
// of course a crash, is a finding.
//
// Built two ways: with clang's libFuzzer (scripts/fuzz.sh, option KILN_BUILD_FUZZ) and, always,
// with the deterministic replay driver in replay_driver.cpp (the `fuzz_loader` ctest).
#include <cstddef>
#include <cstdint>
#include <string>

#include "kiln/error.h"
#include "onnx/importer.h"

// How many inputs imported ([0]) and how many were refused with kiln::Error ([1]); the replay
// driver prints them, to show that mutated inputs get past protobuf parsing.
extern "C" {
long kiln_fuzz_outcomes[2] = {0, 0};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::onnx_import::ImportOptions opts;
  opts.max_tensor_bytes = int64_t(64) << 20;  // a fuzzer must not allocate gigabytes legitimately
  try {
    // dir "" refuses external data: the fuzzer must not read files named by its inputs.
    kiln::onnx_import::import_bytes(std::string(reinterpret_cast<const char*>(data), size), "<fuzz input>", "",
                                    opts);
    ++kiln_fuzz_outcomes[0];
  } catch (const kiln::Error&) {
    ++kiln_fuzz_outcomes[1];  // the expected outcome for a malformed model
  }
  return 0;
}
