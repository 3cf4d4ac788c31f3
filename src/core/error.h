// Errors: one exception type whose message names the file, tensor, field or flag at fault.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace medlab {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// fail("tensor ", name, ": expected ", n, " bytes") builds the message from its parts.
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw Error(message.str());
}

}  // namespace medlab
