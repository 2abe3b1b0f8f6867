// tlsbroker-load: a load generator for tlsbroker (BrokerService.Call, Lease exchanges, bulk Lease
// streams) that verifies every response and reports throughput, latency percentiles, errors by
// gRPC code, the client IDs that served the calls and the broker's TLS handshakes during the
// run. `tlsbroker-load --help` lists the flags.
//
// Exit codes: 0 every operation succeeded and verified, 1 some failed or were corrupt, 2 usage.

#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/load/load_options.h"
#include "tools/load/load_runner.h"
#include "tools/load/load_stats.h"
#include "tools/load/metrics_scrape.h"

namespace tlsbroker::load {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailures = 1;
constexpr int kExitUsage = 2;

int Main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<LoadOptions> options = ParseLoadFlags(args);
  if (!options.ok()) {
    if (absl::IsNotFound(options.status())) {  // --help
      std::fputs(LoadUsage(), stdout);
      return kExitOk;
    }
    std::fprintf(stderr, "tlsbroker-load: %s\n\n%s", std::string(options.status().message()).c_str(),
                 LoadUsage());
    return kExitUsage;
  }

  LoadReport report;
  report.options = *options;
  std::string before;
  const absl::Duration scrape_timeout = absl::Seconds(5);
  if (!options->metrics_url.empty()) {
    absl::StatusOr<std::string> page = HttpGetMetrics(options->metrics_url, scrape_timeout);
    if (page.ok()) {
      before = *std::move(page);
    } else {
      report.metrics_error = std::string(page.status().message());
    }
  }

  absl::StatusOr<RunOutcome> outcome = RunLoad(*options);
  if (!outcome.ok()) {
    std::fprintf(stderr, "tlsbroker-load: %s\n", std::string(outcome.status().message()).c_str());
    return kExitUsage;
  }
  report.stats = std::move(outcome->stats);
  report.elapsed = outcome->elapsed;

  if (!options->metrics_url.empty() && report.metrics_error.empty()) {
    absl::StatusOr<std::string> after = HttpGetMetrics(options->metrics_url, scrape_timeout);
    if (after.ok()) {
      HandshakeCounts b = ParseHandshakes(before, options->backend);
      HandshakeCounts a = ParseHandshakes(*after, options->backend);
      report.handshakes = HandshakeCounts{a.full - b.full, a.resumed - b.resumed,
                                          a.failed - b.failed};
    } else {
      report.metrics_error = std::string(after.status().message());
    }
  }

  const std::string text = options->json ? FormatReportJson(report) : FormatReportText(report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  const bool failures = report.stats.ErrorCount() > 0 || report.stats.corrupt > 0;
  return failures ? kExitFailures : kExitOk;
}

}  // namespace
}  // namespace tlsbroker::load

int main(int argc, char** argv) { return tlsbroker::load::Main(argc, argv); }
