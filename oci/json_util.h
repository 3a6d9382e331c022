// RapidJSON helpers for the OCI documents: parsing with context in errors,
// typed field access, and keeping fields we do not model (round-trip safety).
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dockless::json {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

/// Fields of a JSON object that a model does not know, as key -> raw JSON
/// text. Written back after the known fields, sorted by key, so a document
/// re-written by dockless keeps them and stays byte-stable.
using UnknownFields = std::map<std::string, std::string>;

/// Parses text; throws Error("invalid JSON in <what>: <reason> at offset N").
rapidjson::Document parse(std::string_view text, const std::string& what);

/// Requires v to be an object; throws Error naming `what` otherwise.
void require_object(const rapidjson::Value& v, const std::string& what);

std::optional<std::string> get_string(const rapidjson::Value& obj, const char* key,
                                      const std::string& what);
std::string require_string(const rapidjson::Value& obj, const char* key, const std::string& what);
std::optional<std::int64_t> get_int(const rapidjson::Value& obj, const char* key,
                                    const std::string& what);
std::optional<bool> get_bool(const rapidjson::Value& obj, const char* key, const std::string& what);
/// A string array; absent -> nullopt, null -> nullopt.
std::optional<std::vector<std::string>> get_string_array(const rapidjson::Value& obj,
                                                         const char* key, const std::string& what);
/// An object of strings (annotations, labels); absent or null -> empty.
std::map<std::string, std::string> get_string_map(const rapidjson::Value& obj, const char* key,
                                                  const std::string& what);
/// The keys of an object of empty objects (ExposedPorts, Volumes).
std::optional<std::vector<std::string>> get_key_set(const rapidjson::Value& obj, const char* key,
                                                    const std::string& what);

/// Collects every member of obj whose key is not in `known`.
UnknownFields collect_unknown(const rapidjson::Value& obj,
                              std::initializer_list<std::string_view> known);

/// Compact JSON text of a value.
std::string to_text(const rapidjson::Value& v);

void write_key(Writer& w, std::string_view key);
void write_string(Writer& w, std::string_view s);
void write_string_member(Writer& w, std::string_view key, std::string_view value);
void write_string_array(Writer& w, const std::vector<std::string>& items);
void write_string_map(Writer& w, const std::map<std::string, std::string>& m);
/// Writes {"k1":{},"k2":{}} for a key set.
void write_key_set(Writer& w, const std::vector<std::string>& keys);
void write_unknown(Writer& w, const UnknownFields& unknown);

/// Re-indents compact JSON for people (2 spaces), keeping member order.
std::string pretty(std::string_view compact_json);

}  // namespace dockless::json
