#ifndef TOOLS_LOAD_LOAD_RUNNER_H_
#define TOOLS_LOAD_LOAD_RUNNER_H_

// Drives a broker with the gRPC callback API: `callers` chains of operations, each with one
// operation in flight, over `channels` channels, until the count or the duration runs out.

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/load/load_options.h"
#include "tools/load/load_stats.h"

namespace tlsbroker::load {

struct RunOutcome {
  LoadStats stats;
  absl::Duration elapsed;
};

// Blocks until every caller has finished. Fails only when the run cannot start (unreadable
// credential files); failed operations are counted in the stats.
absl::StatusOr<RunOutcome> RunLoad(const LoadOptions& options);

}  // namespace tlsbroker::load

#endif  // TOOLS_LOAD_LOAD_RUNNER_H_
