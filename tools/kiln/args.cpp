#include "args.h"

namespace kiln::cli {

std::string Args::get(const std::string& f, const std::string& def) const {
  auto it = flags.find(f);
  return it == flags.end() || it->second.empty() ? def : it->second.back();
}

int Args::get_int(const std::string& f, int def, int min_value) const {
  if (!has(f)) return def;
  std::string s = get(f);
  size_t pos = 0;
  int v = 0;
  try {
    v = std::stoi(s, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos != s.size() || s.empty()) fail("--", f, " expects an integer, got '", s, "'");
  if (v < min_value) fail("--", f, " must be at least ", min_value, ", got ", v);
  return v;
}

Args parse(int argc, char** argv, const std::map<std::string, bool>& allowed) {
  Args a;
  if (argc >= 2) a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      std::string name = s.substr(2), value;
      bool has_value = false;
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      auto it = allowed.find(name);
      if (it == allowed.end()) fail("unknown option --", name, " for 'kiln ", a.command, "' (see kiln ", a.command, " --help)");
      if (it->second && !has_value) {
        if (i + 1 >= argc) fail("--", name, " needs a value");
        value = argv[++i];
      }
      a.flags[name].push_back(value);
    } else if (a.model.empty()) {
      a.model = s;
    } else {
      fail("unexpected argument '", s, "'");
    }
  }
  return a;
}

std::map<std::string, Shape> parse_shapes(const std::vector<std::string>& specs) {
  std::map<std::string, Shape> r;
  for (auto& s : specs) {
    auto eq = s.rfind('=');
    if (eq == std::string::npos || eq == 0) fail("--shape expects NAME=DxDx..., got '", s, "'");
    Shape shape;
    std::string dims = s.substr(eq + 1);
    size_t start = 0;
    while (start <= dims.size() && !dims.empty()) {
      size_t x = dims.find('x', start);
      std::string d = dims.substr(start, x == std::string::npos ? std::string::npos : x - start);
      size_t pos = 0;
      long long v = -1;
      try {
        v = std::stoll(d, &pos);
      } catch (...) {
        pos = 0;
      }
      if (pos != d.size() || d.empty() || v < 0) fail("--shape: bad dimension '", d, "' in '", s, "'");
      shape.push_back(v);
      if (x == std::string::npos) break;
      start = x + 1;
    }
    r[s.substr(0, eq)] = shape;
  }
  return r;
}

}  // namespace kiln::cli
