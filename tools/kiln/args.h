// Command-line parsing for the kiln tool: flags of the form --name VALUE or --name=VALUE.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace kiln::cli {

struct Args {
  std::string command;
  std::string model;
  std::map<std::string, std::vector<std::string>> flags;  // repeated flags accumulate

  bool has(const std::string& f) const { return flags.count(f) > 0; }
  std::string get(const std::string& f, const std::string& def = "") const;
  int get_int(const std::string& f, int def, int min_value = 0) const;
};

// `allowed` maps flag name -> takes a value. Throws kiln::Error on unknown flags.
Args parse(int argc, char** argv, const std::map<std::string, bool>& allowed);
// "--shape name=1x3x224x224" values.
std::map<std::string, Shape> parse_shapes(const std::vector<std::string>& specs);

}  // namespace kiln::cli
