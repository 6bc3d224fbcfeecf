// For error-path tests: run f and return the ErrorCode of the lmk::Error it throws; a call that
// throws nothing (or something else) is a test failure.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "lmk/error.h"

namespace lmk {

template <typename F>
ErrorCode code_of(F&& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected lmk::Error, got another exception: " << e.what();
    return ErrorCode::Io;
  }
  ADD_FAILURE() << "no lmk::Error thrown";
  return ErrorCode::Io;
}

}  // namespace lmk
