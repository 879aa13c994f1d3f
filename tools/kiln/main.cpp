// kiln: compile and run ONNX models with generated native code.
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>

#include "commands.h"

namespace {

const char* kHelp =
    "kiln — an ONNX compiler that generates every kernel with LLVM\n"
    "\n"
    "usage: kiln COMMAND MODEL.onnx [options]\n"
    "commands:\n"
    "  run     compile the model and run it once, printing its outputs\n"
    "  bench   compile once and time repeated runs\n"
    "  info    inputs, outputs, operators, parameters, FLOPs, unsupported ops\n"
    "  ops     list the supported ONNX operators\n"
    "Run 'kiln COMMAND --help' for a command's options.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::cout << kHelp;
    return argc < 2 ? 1 : 0;
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "run") return kiln::cli::cmd_run(argc, argv);
    if (cmd == "bench") return kiln::cli::cmd_bench(argc, argv);
    if (cmd == "info") return kiln::cli::cmd_info(argc, argv);
    if (cmd == "ops") return kiln::cli::cmd_ops(argc, argv);
    std::fprintf(stderr, "kiln: unknown command '%s' (see kiln --help)\n", cmd.c_str());
    return 1;
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return 1;
  } catch (const kiln::InternalError& e) {
    std::fprintf(stderr, "kiln: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kiln: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return 1;
  }
}
