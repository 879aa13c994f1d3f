#pragma once
#include "args.h"

namespace kiln::cli {

int cmd_run(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_ops(int argc, char** argv);

}  // namespace kiln::cli
