#include "io/json_util.hpp"

#include <cstring>
#include <unordered_set>
#include <vector>

#include "common/check.hpp"

namespace slidesparse {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxQuotedBytes = 96;

}  // namespace

json parse_json_no_duplicates(const char* first, const char* last, std::string_view what,
                              std::string_view doc) {
  // One key set per open object; arrays carry no keys, so the innermost object is always on top
  // when a key event arrives.
  std::vector<std::unordered_set<std::string>> open_objects;
  const auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case json::parse_event_t::object_end: open_objects.pop_back(); break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        SLIDESPARSE_CHECK(!open_objects.empty() && open_objects.back().insert(key).second,
                          Status::kBadFormat, "{}: {}: duplicate key {}", what, doc,
                          quote_for_message(key));
        break;
      }
      default: break;
    }
    return true;
  };
  // nlohmann stops at a NUL byte as if the input ended there, which would accept "{}\0garbage".
  // A raw NUL is never valid JSON (inside strings it must be escaped).
  if (const void* nul = std::memchr(first, 0, size_t(last - first))) {
    SLIDESPARSE_FAIL(Status::kBadFormat, "{}: {} is not valid JSON: NUL byte at offset {}", what,
                     doc, static_cast<const char*>(nul) - first);
  }
  try {
    return json::parse(first, last, callback);
  } catch (const json::exception& e) {
    SLIDESPARSE_FAIL(Status::kBadFormat, "{}: {} is not valid JSON: {}", what, doc, e.what());
  }
}

std::string describe_json(const json& v) {
  switch (v.type()) {
    case json::value_t::object: return fmt::format("an object of {} entries", v.size());
    case json::value_t::array: return fmt::format("an array of {} elements", v.size());
    case json::value_t::string:
      return "the string " + quote_for_message(v.get_ref<const std::string&>());
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::null: return "null";
    case json::value_t::number_float: return "the number " + v.dump();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "the integer " + v.dump();
    default: return "a value of type " + std::string(v.type_name());
  }
}

std::string quote_for_message(std::string_view s) {
  const bool cut = s.size() > kMaxQuotedBytes;
  std::string q = json(std::string(cut ? s.substr(0, kMaxQuotedBytes) : s))
                      .dump(-1, ' ', false, json::error_handler_t::replace);
  if (cut) q += fmt::format("... ({} bytes)", s.size());
  return q;
}

}  // namespace slidesparse
