// tlsbrokerctl: a command-line client for the tlsbroker gRPC API. `tlsbrokerctl --help` lists
// the commands, options and exit codes.

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "services/build_info.h"
#include "tools/tlsbrokerctl/ctl_commands.h"
#include "tools/tlsbrokerctl/ctl_options.h"

int main(int argc, char** argv) {
  using namespace tlsbroker::ctl;  // NOLINT(build/namespaces): a small main.
  // A closed stdout pipe (`tlsbrokerctl lease x | head`) must surface as a write error, not
  // kill the process before it can release the lease.
  std::signal(SIGPIPE, SIG_IGN);
  // Resolve the broker's name with the system resolver (getaddrinfo: /etc/hosts, nsswitch), as
  // users of a CLI expect, rather than gRPC's default c-ares resolver, which also leaves an
  // allocation behind at exit that LeakSanitizer reports. An explicit setting wins.
  setenv("GRPC_DNS_RESOLVER", "native", /*overwrite=*/0);
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<CtlOptions> options = ParseArgs(args, [](const char* name) {
    return std::getenv(name);
  });
  if (!options.ok()) {
    std::cerr << "tlsbrokerctl: " << options.status().message() << "\n"
              << "Run 'tlsbrokerctl --help' for usage." << std::endl;
    return kExitUsage;
  }
  if (options->command == Command::kHelp) {
    std::cout << UsageText();
    return kExitOk;
  }
  if (options->command == Command::kVersion) {
    std::cout << "tlsbrokerctl " << tlsbroker::BuildVersion() << " (commit "
              << tlsbroker::BuildCommit() << ")\n";
    return kExitOk;
  }
  return RunCtlCommand(*options);
}
