#ifndef BROKER_COMMON_STATUS_MACROS_H_
#define BROKER_COMMON_STATUS_MACROS_H_

// Debian's Abseil (LTS 20220623) has no ABSL_RETURN_IF_ERROR / ABSL_ASSIGN_OR_RETURN yet;
// these are the small equivalents the project uses until a newer Abseil is pinned.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BROKER_STATUS_CONCAT_INNER_(a, b) a##b
#define BROKER_STATUS_CONCAT_(a, b) BROKER_STATUS_CONCAT_INNER_(a, b)

#define BROKER_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::absl::Status _broker_status = (expr);     \
    if (!_broker_status.ok()) return _broker_status; \
  } while (0)

#define BROKER_ASSIGN_OR_RETURN(lhs, expr) \
  BROKER_ASSIGN_OR_RETURN_IMPL_(BROKER_STATUS_CONCAT_(_broker_statusor_, __LINE__), lhs, expr)

#define BROKER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#endif  // BROKER_COMMON_STATUS_MACROS_H_
