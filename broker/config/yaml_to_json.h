#ifndef BROKER_CONFIG_YAML_TO_JSON_H_
#define BROKER_CONFIG_YAML_TO_JSON_H_

// Internal to the config module: walks a YAML tree against a proto message descriptor,
// reporting every unknown field and wrongly typed value with its position, and produces the
// proto-JSON text of the tree for JsonStringToMessage. Thread-compatible (no shared state).

#include <map>
#include <string>
#include <vector>

#include "broker/config/load_options.h"
#include "google/protobuf/descriptor.h"
#include "yaml-cpp/yaml.h"

namespace tlsbroker::config_internal {

struct YamlPosition {
  int line = 0;    // 1-based; 0 = unknown.
  int column = 0;  // 1-based.
};

struct YamlToJsonResult {
  // Proto-JSON text; valid input for JsonStringToMessage only when `errors` is empty.
  std::string json;
  std::vector<ConfigError> errors;
  // Position of the value of every field path seen ("" is the document), including keys
  // whose value is empty, so later semantic checks can point at lines.
  std::map<std::string, YamlPosition> positions;
};

// `root` is the parsed document. Scalar typing rules are described in load_options.h.
YamlToJsonResult YamlToJson(const YAML::Node& root, const google::protobuf::Descriptor* type);

YamlPosition PositionOf(const YAML::Node& node);

}  // namespace tlsbroker::config_internal

#endif  // BROKER_CONFIG_YAML_TO_JSON_H_
