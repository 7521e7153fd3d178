// slidesparse internal: JSON helpers shared by the safetensors and checkpoint readers.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace slidesparse {

// Parses [first, last) as one JSON document. Unlike plain nlohmann::json::parse, a key repeated
// within one object is an error (nlohmann would silently keep the last value, so two tensors of
// the same name would hide one another). Every failure is Error(kBadFormat) naming `what` (a path)
// and `doc` ("header", "index").
nlohmann::json parse_json_no_duplicates(const char* first, const char* last, std::string_view what,
                                        std::string_view doc);

// A short, printable rendering of a value for error messages: scalars as JSON (long strings cut),
// containers by kind and size (headers can be 100 MiB, and dumping a deep value would recurse).
std::string describe_json(const nlohmann::json& v);

// A name as a quoted JSON string, cut to a readable length; invalid UTF-8 is replaced.
std::string quote_for_message(std::string_view s);

}  // namespace slidesparse
