#ifndef BROKER_POOL_CLIENT_ID_H_
#define BROKER_POOL_CLIENT_ID_H_

// Client IDs: slot n of a pool has ID prefix + zero-padded n, `width` characters in all
// (TLSB0003). A replacement socket in the same slot keeps the ID, so the backend sees one
// stable identity per slot.

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "broker/config/options.h"

namespace tlsbroker {

// The ID of `slot` (1-based). Requires the options to be valid (see ValidateClientIdOptions).
std::string FormatClientId(const ClientIdOptions& options, int slot);

// The slot (1-based) that `client_id` names in a pool of `max_sockets`, or nullopt.
std::optional<int> SlotForClientId(const ClientIdOptions& options, int max_sockets,
                                   absl::string_view client_id);

// Checks one ID against the IMS Connect rules: 1-8 characters of A-Z 0-9 @ # $, upper case,
// not starting with HWS (reserved for IDs the server generates).
absl::Status CheckImsClientId(absl::string_view client_id);

// Checks that prefix + width can name `max_sockets` slots (and, with ims_rules, that every ID
// obeys the IMS Connect rules). `prefix` must already have "{ordinal}" filled in.
absl::Status ValidateClientIdOptions(const ClientIdOptions& options, int max_sockets);

}  // namespace tlsbroker

#endif  // BROKER_POOL_CLIENT_ID_H_
