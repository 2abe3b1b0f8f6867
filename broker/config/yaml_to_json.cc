#include "broker/config/yaml_to_json.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tlsbroker::config_internal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;

// How a value looks in an error message: scalars quoted (and shortened), containers by kind.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar: {
      std::string s = node.Scalar();
      if (s.size() > 40) s = absl::StrCat(s.substr(0, 37), "...");
      return absl::StrCat("\"", absl::CHexEscape(s), "\"");
    }
    default:
      return "an undefined value";
  }
}

void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      absl::StrAppend(out, "\\u00", absl::Hex(u, absl::kZeroPad2));
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

// The bare names an enum field accepts (UNSPECIFIED, number 0, is never accepted).
std::vector<std::string> EnumNames(const EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) names.push_back(type->value(i)->name());
  }
  return names;
}

std::string ExpectedKind(const FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "a boolean (true or false, without quotes)";
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "a non-negative integer";
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return "a number";
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat("one of ", absl::StrJoin(EnumNames(field->enum_type()), ", "));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "a mapping";
  }
  return "a value";
}

// Levenshtein distance, for "did you mean" hints on misspelt field names.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string UnknownFieldMessage(absl::string_view key, const Descriptor* type) {
  std::string best;
  size_t best_distance = 3;  // Suggest only names at most 2 edits away.
  std::vector<std::string> names;
  for (int i = 0; i < type->field_count(); ++i) {
    const std::string& name = type->field(i)->name();
    names.push_back(name);
    const size_t d = EditDistance(absl::AsciiStrToLower(key), name);
    if (d < best_distance) {
      best_distance = d;
      best = name;
    }
  }
  std::string message = absl::StrCat("unknown field \"", key, "\"");
  if (!best.empty()) {
    absl::StrAppend(&message, " (did you mean \"", best, "\"?)");
  } else {
    absl::StrAppend(&message, " (known fields: ", absl::StrJoin(names, ", "), ")");
  }
  return message;
}

class Walker {
 public:
  explicit Walker(YamlToJsonResult* out) : out_(out) {}

  // `node` is a mapping.
  void Message(const YAML::Node& node, const Descriptor* type, const std::string& path,
               std::string* json) {
    json->push_back('{');
    bool first = true;
    std::set<std::string> seen;
    std::map<int, std::string> oneof_seen;  // oneof index -> field that set it.
    for (const auto& pair : node) {
      // Copies: yaml-cpp's iterator yields a temporary pair, and Node is a cheap handle.
      const YAML::Node key = pair.first;
      const YAML::Node value = pair.second;
      if (!key.IsScalar()) {
        Error(key, path, absl::StrCat("a field name must be a plain word, got ", Describe(key)));
        continue;
      }
      const std::string& name = key.Scalar();
      const std::string field_path = path.empty() ? name : absl::StrCat(path, ".", name);
      const FieldDescriptor* field = type->FindFieldByName(name);
      if (field == nullptr) {
        Error(key, field_path, UnknownFieldMessage(name, type));
        continue;
      }
      if (!seen.insert(name).second) {
        Error(key, field_path, "field given twice");
        continue;
      }
      out_->positions[field_path] = PositionOf(value);
      if (value.IsNull()) continue;  // An empty value counts as absent.
      if (const auto* oneof = field->real_containing_oneof(); oneof != nullptr) {
        auto [other, inserted] = oneof_seen.emplace(oneof->index(), name);
        if (!inserted) {
          Error(key, field_path,
                absl::StrCat("only one of ", OneofNames(oneof), " may be set (\"", other->second,
                             "\" is set too)"));
          continue;
        }
      }
      std::string field_json;
      if (!Field(value, field, field_path, &field_json)) continue;
      if (!first) json->push_back(',');
      first = false;
      AppendJsonString(name, json);
      json->push_back(':');
      json->append(field_json);
    }
    json->push_back('}');
  }

 private:
  static std::string OneofNames(const google::protobuf::OneofDescriptor* oneof) {
    std::vector<std::string> names;
    for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
    return absl::StrJoin(names, ", ");
  }

  // Returns false (with an error recorded) when `value` does not fit `field`.
  bool Field(const YAML::Node& value, const FieldDescriptor* field, const std::string& path,
             std::string* json) {
    if (field->is_repeated()) {
      if (!value.IsSequence()) {
        Error(
            value, path,
            absl::StrCat("expected a list of ", ExpectedElement(field), ", got ", Describe(value)));
        return false;
      }
      bool ok = true;
      json->push_back('[');
      for (size_t i = 0; i < value.size(); ++i) {
        const YAML::Node element = value[i];
        const std::string element_path = absl::StrCat(path, "[", i, "]");
        out_->positions[element_path] = PositionOf(element);
        // A bad message element still yields (partial) JSON, so list indexes stay aligned
        // with the file; a bad scalar element drops the whole list for the same reason.
        if (i > 0) json->push_back(',');
        if (element.IsNull()) {
          Error(element, element_path, "empty list item");
          if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            json->append("{}");
          } else {
            ok = false;
          }
        } else if (!Single(element, field, element_path, json)) {
          ok = false;
        }
      }
      json->push_back(']');
      return ok;
    }
    return Single(value, field, path, json);
  }

  static std::string ExpectedElement(const FieldDescriptor* field) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) return "mappings";
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) return "strings";
    return "values";
  }

  // One (non-repeated) value.
  bool Single(const YAML::Node& value, const FieldDescriptor* field, const std::string& path,
              std::string* json) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (!value.IsMap()) {
        Error(value, path, absl::StrCat("expected a mapping, got ", Describe(value)));
        return false;
      }
      // Errors inside are recorded and their fields left out, so the rest of the message
      // still reaches the semantic checks.
      Message(value, field->message_type(), path, json);
      return true;
    }
    if (!value.IsScalar()) {
      Error(value, path, absl::StrCat("expected ", ExpectedKind(field), ", got ", Describe(value)));
      return false;
    }
    const std::string& text = value.Scalar();
    // yaml-cpp tags plain scalars "?" and quoted ones "!".
    const bool quoted = value.Tag() == "!";
    const std::string trimmed(absl::StripAsciiWhitespace(text));
    auto fail = [&](absl::string_view why) {
      Error(value, path,
            absl::StrCat("expected ", ExpectedKind(field), ", got ", Describe(value), why));
      return false;
    };
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        AppendJsonString(text, json);
        return true;
      case FieldDescriptor::CPPTYPE_BOOL: {
        const std::string lower = absl::AsciiStrToLower(trimmed);
        if (quoted || (lower != "true" && lower != "false")) return fail("");
        json->append(lower);
        return true;
      }
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v = 0;
        if (!absl::SimpleAtoi(trimmed, &v)) return fail("");
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT32 &&
            (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())) {
          return fail(" (out of range)");
        }
        AppendJsonString(absl::StrCat(v), json);
        return true;
      }
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v = 0;
        if (!trimmed.empty() && trimmed[0] == '-') return fail(" (negative)");
        if (!absl::SimpleAtoi(trimmed, &v)) return fail("");
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 &&
            v > std::numeric_limits<uint32_t>::max()) {
          return fail(" (out of range)");
        }
        AppendJsonString(absl::StrCat(v), json);
        return true;
      }
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double v = 0;
        if (!absl::SimpleAtod(trimmed, &v)) return fail("");
        AppendJsonString(trimmed, json);
        return true;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* enum_value = field->enum_type()->FindValueByName(trimmed);
        if (enum_value == nullptr || enum_value->number() == 0) return fail("");
        AppendJsonString(trimmed, json);
        return true;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;  // Handled above.
    }
    return fail("");
  }

  void Error(const YAML::Node& at, const std::string& path, std::string message) {
    const YamlPosition pos = PositionOf(at);
    out_->errors.push_back(ConfigError{pos.line, pos.column, path, std::move(message)});
  }

  YamlToJsonResult* out_;
};

}  // namespace

YamlPosition PositionOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0) return YamlPosition{};
  return YamlPosition{mark.line + 1, mark.column + 1};
}

YamlToJsonResult YamlToJson(const YAML::Node& root, const Descriptor* type) {
  YamlToJsonResult result;
  result.positions[""] = PositionOf(root);
  if (root.IsNull()) {
    result.errors.push_back(ConfigError{1, 1, "", "the config is empty"});
    return result;
  }
  if (!root.IsMap()) {
    const YamlPosition pos = PositionOf(root);
    result.errors.push_back(
        ConfigError{pos.line, pos.column, "",
                    absl::StrCat("expected a mapping at the top level, got ", Describe(root))});
    return result;
  }
  Walker(&result).Message(root, type, "", &result.json);
  return result;
}

}  // namespace tlsbroker::config_internal
