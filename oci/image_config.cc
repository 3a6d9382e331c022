#include "oci/image_config.h"

#include <ctime>

#include "base/error.h"

namespace dockless {

void ContainerConfig::set_env(const std::string& key, const std::string& value) {
  std::string prefix = key + "=";
  for (auto& e : env) {
    if (e.compare(0, prefix.size(), prefix) == 0) {
      e = prefix + value;
      return;
    }
  }
  env.push_back(prefix + value);
}

std::optional<std::string> ContainerConfig::get_env(const std::string& key) const {
  std::string prefix = key + "=";
  for (const auto& e : env)
    if (e.compare(0, prefix.size(), prefix) == 0) return e.substr(prefix.size());
  return std::nullopt;
}

namespace {

const char* const kWhat = "image config";

ContainerConfig parse_container_config(const rapidjson::Value& v) {
  const std::string what = "image config \"config\"";
  json::require_object(v, what);
  ContainerConfig c;
  c.user = json::get_string(v, "User", what).value_or("");
  c.exposed_ports = json::get_key_set(v, "ExposedPorts", what);
  c.env = json::get_string_array(v, "Env", what).value_or(std::vector<std::string>{});
  c.entrypoint = json::get_string_array(v, "Entrypoint", what);
  c.cmd = json::get_string_array(v, "Cmd", what);
  c.volumes = json::get_key_set(v, "Volumes", what);
  c.working_dir = json::get_string(v, "WorkingDir", what).value_or("");
  c.labels = json::get_string_map(v, "Labels", what);
  c.stop_signal = json::get_string(v, "StopSignal", what).value_or("");
  c.unknown = json::collect_unknown(v, {"User", "ExposedPorts", "Env", "Entrypoint", "Cmd",
                                        "Volumes", "WorkingDir", "Labels", "StopSignal"});
  return c;
}

void write_container_config(json::Writer& w, const ContainerConfig& c) {
  w.StartObject();
  if (!c.user.empty()) json::write_string_member(w, "User", c.user);
  if (c.exposed_ports) {
    json::write_key(w, "ExposedPorts");
    json::write_key_set(w, *c.exposed_ports);
  }
  if (!c.env.empty()) {
    json::write_key(w, "Env");
    json::write_string_array(w, c.env);
  }
  if (c.entrypoint) {
    json::write_key(w, "Entrypoint");
    json::write_string_array(w, *c.entrypoint);
  }
  if (c.cmd) {
    json::write_key(w, "Cmd");
    json::write_string_array(w, *c.cmd);
  }
  if (c.volumes) {
    json::write_key(w, "Volumes");
    json::write_key_set(w, *c.volumes);
  }
  if (!c.working_dir.empty()) json::write_string_member(w, "WorkingDir", c.working_dir);
  if (!c.labels.empty()) {
    json::write_key(w, "Labels");
    json::write_string_map(w, c.labels);
  }
  if (!c.stop_signal.empty()) json::write_string_member(w, "StopSignal", c.stop_signal);
  json::write_unknown(w, c.unknown);
  w.EndObject();
}

HistoryEntry parse_history(const rapidjson::Value& v, int index) {
  const std::string what = "image config history entry " + std::to_string(index);
  json::require_object(v, what);
  HistoryEntry h;
  h.created = json::get_string(v, "created", what).value_or("");
  h.created_by = json::get_string(v, "created_by", what).value_or("");
  h.author = json::get_string(v, "author", what).value_or("");
  h.comment = json::get_string(v, "comment", what).value_or("");
  h.empty_layer = json::get_bool(v, "empty_layer", what).value_or(false);
  h.unknown =
      json::collect_unknown(v, {"created", "created_by", "author", "comment", "empty_layer"});
  return h;
}

void write_history(json::Writer& w, const HistoryEntry& h) {
  w.StartObject();
  if (!h.created.empty()) json::write_string_member(w, "created", h.created);
  if (!h.created_by.empty()) json::write_string_member(w, "created_by", h.created_by);
  if (!h.author.empty()) json::write_string_member(w, "author", h.author);
  if (!h.comment.empty()) json::write_string_member(w, "comment", h.comment);
  if (h.empty_layer) {
    json::write_key(w, "empty_layer");
    w.Bool(true);
  }
  json::write_unknown(w, h.unknown);
  w.EndObject();
}

}  // namespace

ImageConfig ImageConfig::parse(std::string_view text) {
  rapidjson::Document doc = json::parse(text, kWhat);
  json::require_object(doc, kWhat);
  ImageConfig c;
  c.created = json::get_string(doc, "created", kWhat).value_or("");
  c.author = json::get_string(doc, "author", kWhat).value_or("");
  c.architecture = json::require_string(doc, "architecture", kWhat);
  c.os = json::require_string(doc, "os", kWhat);
  c.os_version = json::get_string(doc, "os.version", kWhat).value_or("");
  c.variant = json::get_string(doc, "variant", kWhat).value_or("");
  auto cc = doc.FindMember("config");
  if (cc != doc.MemberEnd() && !cc->value.IsNull()) c.config = parse_container_config(cc->value);
  auto rootfs = doc.FindMember("rootfs");
  if (rootfs == doc.MemberEnd()) throw Error("invalid image config: missing field \"rootfs\"");
  json::require_object(rootfs->value, "image config rootfs");
  std::string type = json::require_string(rootfs->value, "type", "image config rootfs");
  if (type != "layers")
    throw Error("invalid image config: rootfs type \"" + type + "\" is not \"layers\"");
  auto ids = json::get_string_array(rootfs->value, "diff_ids", "image config rootfs");
  if (ids) {
    for (const auto& id : *ids) {
      try {
        c.diff_ids.push_back(Digest::parse(id));
      } catch (const Error& e) {
        throw Error(std::string("invalid image config: rootfs.diff_ids: ") + e.what());
      }
    }
  }
  auto history = doc.FindMember("history");
  if (history != doc.MemberEnd() && !history->value.IsNull()) {
    if (!history->value.IsArray()) throw Error("invalid image config: \"history\" must be an array");
    int i = 0;
    for (const auto& h : history->value.GetArray()) c.history.push_back(parse_history(h, ++i));
  }
  c.unknown = json::collect_unknown(doc, {"created", "author", "architecture", "os", "os.version",
                                          "variant", "config", "rootfs", "history"});
  return c;
}

std::string ImageConfig::to_json() const {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  if (!created.empty()) json::write_string_member(w, "created", created);
  if (!author.empty()) json::write_string_member(w, "author", author);
  json::write_string_member(w, "architecture", architecture);
  json::write_string_member(w, "os", os);
  if (!os_version.empty()) json::write_string_member(w, "os.version", os_version);
  if (!variant.empty()) json::write_string_member(w, "variant", variant);
  json::write_key(w, "config");
  write_container_config(w, config);
  json::write_key(w, "rootfs");
  w.StartObject();
  json::write_string_member(w, "type", "layers");
  json::write_key(w, "diff_ids");
  w.StartArray();
  for (const auto& d : diff_ids) json::write_string(w, d.str());
  w.EndArray();
  w.EndObject();
  if (!history.empty()) {
    json::write_key(w, "history");
    w.StartArray();
    for (const auto& h : history) write_history(w, h);
    w.EndArray();
  }
  json::write_unknown(w, unknown);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string format_rfc3339(long long unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) throw Error("timestamp out of range: " + std::to_string(unix_seconds));
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace dockless
