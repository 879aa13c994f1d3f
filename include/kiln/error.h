// kiln's error type. A kiln::Error is a user-facing problem (bad model, unsupported op, wrong
// input): its message names the file/node and the reason. Internal bugs use KILN_CHECK, which
// throws kiln::InternalError so that the CLI still exits cleanly instead of crashing.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace kiln

#define KILN_CHECK(cond, ...)                                                                  \
  do {                                                                                         \
    if (!(cond))                                                                               \
      throw ::kiln::InternalError(::kiln::detail::concat("internal error at ", __FILE__, ":", \
                                                         __LINE__, ": ", #cond, " ",          \
                                                         ##__VA_ARGS__));                      \
  } while (0)
