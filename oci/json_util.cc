#include "oci/json_util.h"

#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/error.h"

namespace dockless::json {

namespace {
/// OCI documents nest a few levels. A hostile one nested a million levels
/// deep would overflow the stack of code that walks it, so refuse it first.
constexpr int kMaxDepth = 128;

/// What parse() must know of a text before RapidJSON reads it, in one pass
/// outside strings (manifests reach 4 MiB):
/// - too_deep: nested deeper than kMaxDepth;
/// - safe: when the text has a number RapidJSON 1.1.0's full-precision
///   reader gets wrong, a copy with each one replaced by "0.0" or "-0.0"
///   padded with spaces to the same length (offsets in errors stay right).
///   Those are numbers whose value is zero as a double:
///   - all digits zero, with a fraction or an exponent ("0e-314",
///     "-0.0E-30"): read as garbage (1.5e82: its DiyFp normalises a zero
///     significand);
///   - below 1e-324 with many digits ("1.00000000001110015e-342"): it
///     checks "too small" without the digits before the point and indexes
///     its table of powers of ten out of bounds (UBSan: overflow in
///     GetCachedPower10).
///   Rewriting them keeps one number path for the whole document: with the
///   default path as a fallback, a denormal elsewhere in the same document
///   was read one way and its written form another (unstable round trip).
struct TextScan {
  bool too_deep = false;
  std::optional<std::string> safe;
};

bool one_of(const char* set, char c) { return c != 0 && std::strchr(set, c) != nullptr; }

/// A number to rewrite: its length (0: none) and its value as RapidJSON
/// reads it right ("0": zero, the sign kept apart).
struct Rewrite {
  std::size_t length = 0;
  std::string_view value;
};

/// The JSON number at the start of t (only what RapidJSON reads: "0e-41" of
/// "0e-41e") if it is one of those numbers.
Rewrite number_to_rewrite(std::string_view t) {
  std::size_t i = (!t.empty() && t[0] == '-') ? 1 : 0;
  auto digit = [&] { return i < t.size() && t[i] >= '0' && t[i] <= '9'; };
  if (!digit()) return {};
  bool nonzero = t[i] != '0', decorated = false;
  long order = 0;  // the power of ten of the first non-zero digit
  if (t[i] == '0') {
    ++i;
  } else {
    std::size_t start = i;
    while (digit()) ++i;
    order = static_cast<long>(i - start) - 1;
  }
  if (i < t.size() && t[i] == '.') {
    std::size_t start = ++i;
    for (; digit(); ++i)
      if (!nonzero && t[i] != '0') {
        nonzero = true;
        order = -static_cast<long>(i - start + 1);
      }
    if (i == start) return {};  // RapidJSON stops here: an error
    decorated = true;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    bool minus = ++i < t.size() && t[i] == '-';
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    std::size_t start = i;
    long e = 0;
    for (; digit(); ++i) e = std::min(e * 10 + (t[i] - '0'), 1000000L);
    if (i == start) return {};
    decorated = true;
    order += minus ? -e : e;
  }
  // Below 1e-324 a double is 0 (the smallest denormal is 4.9e-324).
  if ((!nonzero && decorated) || (nonzero && order <= -325)) return {i, "0"};
  if (!nonzero || order != -324) return {};
  // From 1e-324 to 1e-323: 0, 1 or 2 times the smallest denormal, written
  // as RapidJSON reads it right (it read "1e-324" as NaN and 2.2e-324 as
  // 4.9e-324). from_chars rounds correctly.
  double v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + i, v);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && v == 0)) return {i, "0"};
  double denorm = std::numeric_limits<double>::denorm_min();
  if (ec == std::errc() && std::fabs(v) == denorm) return {i, "5e-324"};
  if (ec == std::errc() && std::fabs(v) == 2 * denorm) return {i, "1e-323"};
  return {};
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
      Rewrite r = number_to_rewrite(number);
      // When more number characters follow ("0e5e5"), the text is invalid
      // anyway: a short zero then keeps a space before them ("0  e5"), as
      // "0.0e5" would be a valid number.
      std::string value(number[0] == '-' ? "-" : "");
      value += r.value != "0" ? r.value : r.length == number.size() ? "0.0" : "0";
      if (r.length != 0 && number.substr(0, r.length) != value) {
        if (!out.safe) out.safe.emplace(text);
        out.safe->replace(start, r.length, value + std::string(r.length - value.size(), ' '));
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
