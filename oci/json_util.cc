#include "oci/json_util.h"

#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace dockless::json {

namespace {
/// OCI documents nest a few levels. A hostile one nested a million levels
/// deep would overflow the stack of code that walks it, so refuse it first.
constexpr int kMaxDepth = 128;

/// What parse() must know of a text before RapidJSON reads it, in one pass
/// outside strings (manifests reach 4 MiB):
/// - too_deep: nested deeper than kMaxDepth;
/// - safe: when the text has a number whose digits are all zeros and which
///   has a fraction or an exponent ("0e-314", "-0.0E-30"), a copy with each
///   one replaced by "0.0" or "-0.0" padded with spaces to the same length
///   (offsets in errors stay right; the shortest, "0e0", is as long as
///   "0.0"). RapidJSON 1.1.0's full-precision path reads some of those as
///   garbage (1.5e82: its DiyFp normalises a zero significand). Rewriting
///   them keeps one number path for the whole document: with the default
///   path as a fallback, a denormal elsewhere in the same document was read
///   one way and its written form another, so it changed on a round trip.
struct TextScan {
  bool too_deep = false;
  std::optional<std::string> safe;
};

bool one_of(const char* set, char c) { return c != 0 && std::strchr(set, c) != nullptr; }

/// The length of the JSON number at the start of t if it is a zero written
/// with a fraction or an exponent (-?0(.0+)?([eE][+-]?[0-9]+)?, with at least
/// one of the two), else 0. Only that prefix: RapidJSON reads the number
/// "0e-41" of "0e-41e]" (and would compute it) before it finds the error.
std::size_t decorated_zero(std::string_view t) {
  std::size_t i = (!t.empty() && t[0] == '-') ? 1 : 0;
  if (i >= t.size() || t[i++] != '0') return 0;
  auto digits = [&](const char* set) {
    std::size_t n = 0;
    for (; i < t.size() && one_of(set, t[i]); ++i) ++n;
    return n;
  };
  bool decorated = false;
  if (i < t.size() && t[i] == '.') {
    ++i;
    if (digits("0") == 0 || (i < t.size() && one_of("123456789", t[i]))) return 0;
    decorated = true;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    if (++i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (digits("0123456789") == 0) return 0;
    decorated = true;
  }
  return decorated ? i : 0;
}

TextScan scan(std::string_view text) {
  TextScan out;
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) {
        out.too_deep = true;
        return out;
      }
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      std::size_t start = i;
      while (i < text.size() && one_of("-+.eE0123456789", text[i])) ++i;
      std::string_view number = text.substr(start, i - start);
      std::size_t n = decorated_zero(number);
      // When more number characters follow ("0e5e5"), the text is invalid
      // anyway: a short zero then keeps a space before them ("0  e5"), as
      // "0.0e5" would be a valid number.
      std::string_view zero = number[0] == '-' ? (n == number.size() ? "-0.0" : "-0")
                                               : (n == number.size() ? "0.0" : "0");
      if (n != 0 && number.substr(0, n) != zero) {
        if (!out.safe) out.safe.emplace(text);
        out.safe->replace(start, n, std::string(zero) + std::string(n - zero.size(), ' '));
      }
      --i;  // the loop's ++i moves onto what ends the number
    }
  }
  return out;
}

}  // namespace

rapidjson::Document parse(std::string_view text, const std::string& what) {
  TextScan seen = scan(text);
  if (seen.too_deep)
    throw Error("invalid JSON in " + what + ": nested deeper than " + std::to_string(kMaxDepth) +
                " levels");
  rapidjson::Document doc;
  // Full precision: RapidJSON's fast number path can be off by an ulp, and a
  // number kept in an unknown field must be written back as it was read.
  constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag;
  std::string_view parsed = seen.safe ? std::string_view(*seen.safe) : text;
  doc.Parse<kFlags>(parsed.data(), parsed.size());
  if (doc.HasParseError())
    throw Error("invalid JSON in " + what + ": " + rapidjson::GetParseError_En(doc.GetParseError()) +
                " at offset " + std::to_string(doc.GetErrorOffset()));
  return doc;
}

void require_object(const rapidjson::Value& v, const std::string& what) {
  if (!v.IsObject()) throw Error("invalid " + what + ": expected a JSON object");
}

namespace {
const rapidjson::Value* member(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

[[noreturn]] void wrong_type(const char* key, const std::string& what, const char* expected) {
  throw Error("invalid " + what + ": field \"" + key + "\" must be " + expected);
}
}  // namespace

std::optional<std::string> get_string(const rapidjson::Value& obj, const char* key,
                                      const std::string& what) {
  const rapidjson::Value* v = member(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->IsString()) wrong_type(key, what, "a string");
  return std::string(v->GetString(), v->GetStringLength());
}

std::string require_string(const rapidjson::Value& obj, const char* key, const std::string& what) {
  auto s = get_string(obj, key, what);
  if (!s) throw Error("invalid " + what + ": missing field \"" + key + "\"");
  return *s;
}

std::optional<std::int64_t> get_int(const rapidjson::Value& obj, const char* key,
                                    const std::string& what) {
  const rapidjson::Value* v = member(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->IsInt64()) wrong_type(key, what, "an integer");
  return v->GetInt64();
}

std::optional<bool> get_bool(const rapidjson::Value& obj, const char* key, const std::string& what) {
  const rapidjson::Value* v = member(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->IsBool()) wrong_type(key, what, "true or false");
  return v->GetBool();
}

std::optional<std::vector<std::string>> get_string_array(const rapidjson::Value& obj,
                                                         const char* key, const std::string& what) {
  const rapidjson::Value* v = member(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->IsArray()) wrong_type(key, what, "an array of strings");
  std::vector<std::string> out;
  for (const auto& item : v->GetArray()) {
    if (!item.IsString()) wrong_type(key, what, "an array of strings");
    out.emplace_back(item.GetString(), item.GetStringLength());
  }
  return out;
}

std::map<std::string, std::string> get_string_map(const rapidjson::Value& obj, const char* key,
                                                  const std::string& what) {
  std::map<std::string, std::string> out;
  const rapidjson::Value* v = member(obj, key);
  if (v == nullptr) return out;
  if (!v->IsObject()) wrong_type(key, what, "an object of strings");
  for (const auto& m : v->GetObject()) {
    if (!m.value.IsString()) wrong_type(key, what, "an object of strings");
    out.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                std::string(m.value.GetString(), m.value.GetStringLength()));
  }
  return out;
}

std::optional<std::vector<std::string>> get_key_set(const rapidjson::Value& obj, const char* key,
                                                    const std::string& what) {
  const rapidjson::Value* v = member(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->IsObject()) wrong_type(key, what, "an object");
  std::vector<std::string> out;
  for (const auto& m : v->GetObject()) out.emplace_back(m.name.GetString(), m.name.GetStringLength());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

UnknownFields collect_unknown(const rapidjson::Value& obj,
                              std::initializer_list<std::string_view> known) {
  UnknownFields out;
  for (const auto& m : obj.GetObject()) {
    std::string_view name(m.name.GetString(), m.name.GetStringLength());
    if (std::find(known.begin(), known.end(), name) == known.end())
      out[std::string(name)] = to_text(m.value);
  }
  return out;
}

std::string to_text(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

void write_key(Writer& w, std::string_view key) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}

void write_string(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void write_string_member(Writer& w, std::string_view key, std::string_view value) {
  write_key(w, key);
  write_string(w, value);
}

void write_string_array(Writer& w, const std::vector<std::string>& items) {
  w.StartArray();
  for (const auto& s : items) write_string(w, s);
  w.EndArray();
}

void write_string_map(Writer& w, const std::map<std::string, std::string>& m) {
  w.StartObject();
  for (const auto& [k, v] : m) write_string_member(w, k, v);
  w.EndObject();
}

void write_key_set(Writer& w, const std::vector<std::string>& unsorted) {
  // Sorted and unique, as a JSON object's keys must be for stable bytes.
  std::vector<std::string> keys = unsorted;
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  w.StartObject();
  for (const auto& k : keys) {
    write_key(w, k);
    w.StartObject();
    w.EndObject();
  }
  w.EndObject();
}

void write_unknown(Writer& w, const UnknownFields& unknown) {
  for (const auto& [k, raw] : unknown) {
    write_key(w, k);
    w.RawValue(raw.data(), raw.size(), rapidjson::kObjectType);
  }
}

std::string pretty(std::string_view compact_json) {
  rapidjson::Document doc = parse(compact_json, "document");
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  doc.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace dockless::json
