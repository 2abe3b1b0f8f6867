#ifndef TOOLS_LOAD_METRICS_SCRAPE_H_
#define TOOLS_LOAD_METRICS_SCRAPE_H_

// Fetches the broker's Prometheus page and reads the handshake counters from it.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tools/load/load_stats.h"

namespace tlsbroker::load {

// GETs `url` (http://host:port[/path]; the path defaults to /metrics) with HTTP/1.0 and
// returns the body of a 200 answer. Blocking; bounded by `timeout` per socket operation.
absl::StatusOr<std::string> HttpGetMetrics(const std::string& url, absl::Duration timeout);

// Sums tlsbroker_tls_handshakes_total{backend="<backend>",...} in Prometheus text: result="ok"
// split by resumed, and every other result as failed.
HandshakeCounts ParseHandshakes(absl::string_view metrics_text, absl::string_view backend);

}  // namespace tlsbroker::load

#endif  // TOOLS_LOAD_METRICS_SCRAPE_H_
