// Tests for oci/keychain: where registry credentials come from (--creds,
// --authfile, environment, containers auth.json, docker config.json,
// docker-credential-* helpers), in which order, and that no secret ever
// reaches an error message. Every test points HOME, XDG_RUNTIME_DIR and the
// other variables into a temp dir, so the real user's logins never interfere.
#include "oci/keychain.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/error.h"
#include "tests/test_support.h"

namespace {

namespace fs = std::filesystem;
using dockless::Credentials;
using dockless::Error;
using dockless::Keychain;
using dockless::KeychainOptions;
using dockless::UsageError;
using dockless::parse_creds;
using dockless::test::TempDir;
using dockless::test::write_text;
using Catch::Matchers::Contains;

// A password that is easy to spot in any message that leaks it.
constexpr const char* kSecret = "hunter2-TOPSECRET";

// Saves the variables the keychain reads and restores them afterwards, so a
// test cannot change the environment of the ones after it.
class EnvGuard {
 public:
  EnvGuard() {
    for (const char* name : kNames) {
      const char* v = ::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
    }
  }
  ~EnvGuard() {
    for (const auto& [name, value] : saved_) {
      if (value)
        ::setenv(name, value->c_str(), 1);
      else
        ::unsetenv(name);
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

 private:
  static constexpr const char* kNames[] = {"HOME",          "XDG_RUNTIME_DIR",   "REGISTRY_AUTH_FILE",
                                           "DOCKER_CONFIG", "DOCKLESS_USERNAME", "DOCKLESS_PASSWORD",
                                           "PATH"};
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

// Test-side base64 encoder (independent of the decoder under test).
std::string b64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) | static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (in.size() - i == 1) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (in.size() - i == 2) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// {"auths": {key: {"auth": base64(user:pass)}, ...}}
std::string auths(const std::vector<std::pair<std::string, std::string>>& key_userpass) {
  std::string s = "{\"auths\": {";
  for (std::size_t i = 0; i < key_userpass.size(); ++i) {
    if (i > 0) s += ", ";
    s += "\"" + key_userpass[i].first + "\": {\"auth\": \"" + b64(key_userpass[i].second) + "\"}";
  }
  return s + "}}";
}

// A home, a runtime dir and a bin dir for helpers, all inside one temp dir;
// REGISTRY_AUTH_FILE, DOCKER_CONFIG and DOCKLESS_* unset.
struct Sandbox {
  EnvGuard env;
  TempDir dir;
  fs::path home = dir / "home";
  fs::path runtime = dir / "run";
  fs::path bin = dir / "bin";

  Sandbox() {
    fs::create_directories(home);
    fs::create_directories(runtime);
    ::setenv("HOME", home.c_str(), 1);
    ::setenv("XDG_RUNTIME_DIR", runtime.c_str(), 1);
    for (const char* name :
         {"REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "DOCKLESS_USERNAME", "DOCKLESS_PASSWORD"})
      ::unsetenv(name);
  }

  fs::path runtime_auth() const { return runtime / "containers" / "auth.json"; }
  fs::path user_auth() const { return home / ".config" / "containers" / "auth.json"; }
  fs::path docker_config() const { return home / ".docker" / "config.json"; }

  // An executable script docker-credential-<name> in bin, which is put first on PATH.
  void helper(const std::string& name, const std::string& body) {
    fs::path p = bin / ("docker-credential-" + name);
    write_text(p, "#!/bin/sh\n" + body);
    fs::permissions(p, fs::perms::owner_all);
    const char* path = ::getenv("PATH");
    std::string value = bin.string();
    if (path == nullptr || std::string(path).find(value) == std::string::npos)
      ::setenv("PATH", (value + ":" + (path ? path : "/usr/bin:/bin")).c_str(), 1);
  }

  // The helpers the helper tests use. docker-credential-test answers per
  // server URL read from stdin and logs each URL it was asked for.
  void standard_helpers() {
    helper("test",
           "[ \"$1\" = get ] || { echo \"unexpected action $1\" >&2; exit 9; }\n"
           "url=$(cat)\n"
           "printf '%s\\n' \"$url\" >> \"${0%/*}/test.log\"\n"
           "case \"$url\" in\n"
           "  helper.example.com) printf '{\"ServerURL\":\"%s\",\"Username\":\"helperuser\","
           "\"Secret\":\"helpersecret\"}\\n' \"$url\" ;;\n"
           "  https://index.docker.io/v1/) printf '{\"ServerURL\":\"%s\",\"Username\":\"hubuser\","
           "\"Secret\":\"hubsecret\"}\\n' \"$url\" ;;\n"
           "  token.example.com) printf '{\"ServerURL\":\"%s\",\"Username\":\"<token>\","
           "\"Secret\":\"refresh-token-1\"}\\n' \"$url\" ;;\n"
           "  *) echo 'credentials not found in native keychain'; exit 1 ;;\n"
           "esac\n");
    helper("testalt", "cat >/dev/null\necho '{\"ServerURL\":\"x\",\"Username\":\"altuser\",\"Secret\":\"altsecret\"}'\n");
    helper("testnotfound", "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n");
    helper("testfail",
           "cat >/dev/null\necho 'stdout-" + std::string(kSecret) + "'\n"
           "echo 'boom: vault is sealed' >&2\necho 'second-" + std::string(kSecret) + "' >&2\nexit 3\n");
    helper("testhang", "exec sleep 30\n");
    helper("testbadjson", "cat >/dev/null\necho '{\"Username\":\"u\",\"Secret\":\"" +
                              std::string(kSecret) + "\"'\n");
    helper("testempty", "cat >/dev/null\necho '{}'\n");
    helper("testnoread", "echo '{\"Username\":\"n\",\"Secret\":\"noreadsecret\"}'\n");
  }

  std::string helper_log() const {
    std::error_code ec;
    if (!fs::exists(bin / "test.log", ec)) return "";
    std::string s;
    FILE* f = std::fopen((bin / "test.log").c_str(), "r");
    for (int c; f && (c = std::fgetc(f)) != EOF;) s += static_cast<char>(c);
    if (f) std::fclose(f);
    return s;
  }
};

Keychain default_keychain(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  KeychainOptions o;
  o.helper_timeout = timeout;
  return Keychain(std::move(o));
}

// The message of the Error that fn throws ("" and a failed check if none).
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL_CHECK("no dockless::Error was thrown");
  return "";
}

void check_creds(const Credentials& c, const std::string& user, const std::string& secret,
                 const std::string& source) {
  CHECK(c.username == user);
  CHECK(c.secret == secret);
  CHECK_FALSE(c.identity_token);
  CHECK(c.source == source);
}

}  // namespace

// ---- parse_creds and Credentials ----------------------------------------------

TEST_CASE("parse_creds splits USER:PASS at the first colon", "[keychain]") {
  Credentials c = parse_creds("alice:s3cr:et");
  CHECK(c.username == "alice");
  CHECK(c.secret == "s3cr:et");
  CHECK_FALSE(c.identity_token);
  CHECK(c.source == "--creds");

  Credentials empty_password = parse_creds("bob:");
  CHECK(empty_password.username == "bob");
  CHECK(empty_password.secret.empty());
  CHECK_FALSE(empty_password.empty());
}

TEST_CASE("parse_creds rejects a missing colon or user without echoing the text", "[keychain]") {
  for (std::string text : {std::string(kSecret), std::string(":") + kSecret, std::string()}) {
    INFO("text: " << text);
    try {
      (void)parse_creds(text);
      FAIL("parse_creds accepted bad text");
    } catch (const UsageError& e) {
      CHECK_THAT(e.what(), Contains("--creds"));
      CHECK_THAT(e.what(), !Contains(kSecret));
    }
  }
}

TEST_CASE("Credentials::empty means anonymous", "[keychain]") {
  CHECK(Credentials{}.empty());
  CHECK_FALSE((Credentials{"u", "", false, ""}).empty());
  CHECK_FALSE((Credentials{"", "token", true, ""}).empty());
}

// ---- order of the sources -------------------------------------------------------

TEST_CASE("explicit credentials win over every other source", "[keychain]") {
  Sandbox sb;
  write_text(sb.runtime_auth(), auths({{"reg.example.com", "fileuser:filepass"}}));
  ::setenv("DOCKLESS_USERNAME", "envuser", 1);
  ::setenv("DOCKLESS_PASSWORD", "envpass", 1);
  KeychainOptions o;
  o.explicit_creds = parse_creds("cliuser:clipass");
  o.authfile = (sb.dir / "auth.json").string();
  Keychain k(std::move(o));
  check_creds(k.lookup("reg.example.com"), "cliuser", "clipass", "--creds");
  // --creds is for every registry the command talks to.
  check_creds(k.lookup("other.example.com"), "cliuser", "clipass", "--creds");
  CHECK(k.files().empty());
}

TEST_CASE("--authfile is the only file searched", "[keychain]") {
  Sandbox sb;
  fs::path authfile = sb.dir / "my-auth.json";
  write_text(authfile, auths({{"a.example.com", "authfileuser:authfilepass"}}));
  write_text(sb.runtime_auth(), auths({{"b.example.com", "runuser:runpass"}}));
  write_text(sb.docker_config(), auths({{"a.example.com", "dockeruser:dockerpass"}}));
  // --authfile also beats the environment variables.
  ::setenv("DOCKLESS_USERNAME", "envuser", 1);
  ::setenv("DOCKLESS_PASSWORD", "envpass", 1);

  KeychainOptions o;
  o.authfile = authfile.string();
  Keychain k(std::move(o));
  REQUIRE(k.files() == std::vector<fs::path>{authfile});
  check_creds(k.lookup("a.example.com"), "authfileuser", "authfilepass", authfile.string());
  CHECK(k.lookup("b.example.com").empty());
}

TEST_CASE("a missing --authfile is an error that names it", "[keychain]") {
  Sandbox sb;
  KeychainOptions o;
  o.authfile = (sb.dir / "typo.json").string();
  Keychain k(std::move(o));
  std::string msg = error_of([&] { (void)k.lookup("reg.example.com"); });
  CHECK_THAT(msg, Contains("typo.json"));
  CHECK_THAT(msg, Contains("--authfile"));
}

TEST_CASE("DOCKLESS_USERNAME and DOCKLESS_PASSWORD come before the default files", "[keychain]") {
  Sandbox sb;
  write_text(sb.runtime_auth(), auths({{"reg.example.com", "fileuser:filepass"}}));
  ::setenv("DOCKLESS_USERNAME", "envuser", 1);
  ::setenv("DOCKLESS_PASSWORD", "env:pass", 1);
  Keychain k = default_keychain();
  Credentials c = k.lookup("reg.example.com");
  CHECK(c.username == "envuser");
  CHECK(c.secret == "env:pass");
  CHECK_THAT(c.source, Contains("DOCKLESS_USERNAME"));
  CHECK(k.files().empty());
}

TEST_CASE("setting only one of DOCKLESS_USERNAME/DOCKLESS_PASSWORD is a usage error", "[keychain]") {
  Sandbox sb;
  SECTION("only the user") {
    ::setenv("DOCKLESS_USERNAME", "envuser", 1);
    CHECK_THROWS_AS(default_keychain(), UsageError);
  }
  SECTION("only the password, which is not echoed") {
    ::setenv("DOCKLESS_PASSWORD", kSecret, 1);
    try {
      (void)default_keychain();
      FAIL("no UsageError");
    } catch (const UsageError& e) {
      CHECK_THAT(e.what(), Contains("DOCKLESS_USERNAME"));
      CHECK_THAT(e.what(), !Contains(kSecret));
    }
  }
}

TEST_CASE("default files are searched in order and the first with an entry wins", "[keychain]") {
  Sandbox sb;
  fs::path env_file = sb.dir / "env-auth.json";
  ::setenv("REGISTRY_AUTH_FILE", env_file.c_str(), 1);
  const std::string host = "reg.example.com";
  write_text(env_file, auths({{host, "u1:p1"}}));
  write_text(sb.runtime_auth(), auths({{host, "u2:p2"}}));
  write_text(sb.user_auth(), auths({{host, "u3:p3"}}));
  write_text(sb.docker_config(), auths({{host, "u4:p4"}}));

  REQUIRE(default_keychain().files() ==
          std::vector<fs::path>{env_file, sb.runtime_auth(), sb.user_auth(), sb.docker_config()});
  check_creds(default_keychain().lookup(host), "u1", "p1", env_file.string());
  fs::remove(env_file);
  check_creds(default_keychain().lookup(host), "u2", "p2", sb.runtime_auth().string());
  fs::remove(sb.runtime_auth());
  check_creds(default_keychain().lookup(host), "u3", "p3", sb.user_auth().string());
  fs::remove(sb.user_auth());
  check_creds(default_keychain().lookup(host), "u4", "p4", sb.docker_config().string());
  fs::remove(sb.docker_config());
  Credentials none = default_keychain().lookup(host);
  CHECK(none.empty());
  CHECK(none.source.empty());
}

TEST_CASE("DOCKER_CONFIG replaces ~/.docker", "[keychain]") {
  Sandbox sb;
  fs::path docker_dir = sb.dir / "docker-cfg";
  write_text(docker_dir / "config.json", auths({{"reg.example.com", "dcuser:dcpass"}}));
  write_text(sb.docker_config(), auths({{"reg.example.com", "homeuser:homepass"}}));
  ::setenv("DOCKER_CONFIG", docker_dir.c_str(), 1);
  Keychain k = default_keychain();
  CHECK(k.files().back() == docker_dir / "config.json");
  check_creds(k.lookup("reg.example.com"), "dcuser", "dcpass", (docker_dir / "config.json").string());
}

TEST_CASE("missing files and unset variables mean anonymous, quietly", "[keychain]") {
  Sandbox sb;
  ::setenv("REGISTRY_AUTH_FILE", (sb.dir / "nope" / "auth.json").c_str(), 1);
  ::setenv("DOCKER_CONFIG", (sb.dir / "nope-docker").c_str(), 1);
  CHECK(default_keychain().lookup("reg.example.com").empty());

  ::unsetenv("HOME");
  ::unsetenv("XDG_RUNTIME_DIR");
  ::unsetenv("REGISTRY_AUTH_FILE");
  ::unsetenv("DOCKER_CONFIG");
  Keychain k = default_keychain();
  CHECK(k.files().empty());
  CHECK(k.lookup("reg.example.com").empty());
}

TEST_CASE("a file with nothing for the host does not stop the search", "[keychain]") {
  Sandbox sb;
  const std::string host = "reg.example.com";
  write_text(sb.docker_config(), auths({{host, "dockeruser:dockerpass"}}));
  SECTION("entries for other hosts only") {
    write_text(sb.runtime_auth(), auths({{"other.example.com", "o:p"}}));
  }
  SECTION("an empty entry, as docker writes beside a credsStore") {
    write_text(sb.runtime_auth(), "{\"auths\": {\"" + host + "\": {}}}");
  }
  SECTION("an empty or blank file") {
    write_text(sb.runtime_auth(), "");
    write_text(sb.user_auth(), " \n");
  }
  SECTION("no auths at all") { write_text(sb.runtime_auth(), "{}"); }
  check_creds(default_keychain().lookup(host), "dockeruser", "dockerpass",
              sb.docker_config().string());
}

// ---- key forms -------------------------------------------------------------------

TEST_CASE("every host key form matches", "[keychain]") {
  Sandbox sb;
  const std::string host = "localhost:5000";
  auto key = GENERATE_COPY(as<std::string>{}, host, "https://" + host, "http://" + host, host + "/v1/",
                           "https://" + host + "/v1/", "https://" + host + "/v2/");
  INFO("key: " << key);
  write_text(sb.user_auth(), auths({{key, "keyuser:keypass"}}));
  check_creds(default_keychain().lookup(host), "keyuser", "keypass", sb.user_auth().string());
}

TEST_CASE("keys of other hosts do not match", "[keychain]") {
  Sandbox sb;
  auto key = GENERATE(as<std::string>{}, "localhost:5001", "localhost", "https://localhost:50001",
                      "localhost:5000.evil.com", "https://localhost:5000.evil.com/v1/",
                      "xlocalhost:5000", "LOCALHOST:5000");
  INFO("key: " << key);
  write_text(sb.user_auth(), auths({{key, "keyuser:keypass"}}));
  CHECK(default_keychain().lookup("localhost:5000").empty());
}

TEST_CASE("the bare host key wins over the URL forms in one file", "[keychain]") {
  Sandbox sb;
  write_text(sb.user_auth(), auths({{"https://reg.example.com/v1/", "urluser:urlpass"},
                                    {"reg.example.com", "hostuser:hostpass"},
                                    {"http://reg.example.com", "httpuser:httppass"}}));
  check_creds(default_keychain().lookup("reg.example.com"), "hostuser", "hostpass",
              sb.user_auth().string());
}

TEST_CASE("Docker Hub is found under each of its names", "[keychain]") {
  Sandbox sb;
  auto key = GENERATE(as<std::string>{}, "https://index.docker.io/v1/", "index.docker.io",
                      "registry-1.docker.io", "docker.io", "https://docker.io");
  INFO("key: " << key);
  write_text(sb.docker_config(), auths({{key, "hubuser:hubpass"}}));
  for (const char* registry : {"docker.io", "index.docker.io", "registry-1.docker.io"}) {
    INFO("registry: " << registry);
    check_creds(default_keychain().lookup(registry, "library/python"), "hubuser", "hubpass",
                sb.docker_config().string());
  }
  // And not for other registries.
  CHECK(default_keychain().lookup("ghcr.io").empty());
}

TEST_CASE("repo-scoped keys: the longest covering prefix wins over the host", "[keychain]") {
  Sandbox sb;
  write_text(sb.user_auth(), auths({{"reg.example.com", "hostuser:hostpass"},
                                    {"reg.example.com/team", "teamuser:teampass"},
                                    {"reg.example.com/team/app", "appuser:apppass"},
                                    {"docker.io/library/python", "pyuser:pypass"},
                                    {"docker.io", "hubuser:hubpass"}}));
  Keychain k = default_keychain();
  const std::string src = sb.user_auth().string();
  check_creds(k.lookup("reg.example.com", "team/app"), "appuser", "apppass", src);
  check_creds(k.lookup("reg.example.com", "team/app/sub"), "appuser", "apppass", src);
  // Whole components only: "team/app" does not cover "team/application".
  check_creds(k.lookup("reg.example.com", "team/application"), "teamuser", "teampass", src);
  check_creds(k.lookup("reg.example.com", "other/app"), "hostuser", "hostpass", src);
  check_creds(k.lookup("reg.example.com"), "hostuser", "hostpass", src);
  check_creds(k.lookup("docker.io", "library/python"), "pyuser", "pypass", src);
  check_creds(k.lookup("index.docker.io", "library/python"), "pyuser", "pypass", src);
  check_creds(k.lookup("docker.io", "library/debian"), "hubuser", "hubpass", src);
}

TEST_CASE("a repo-scoped key without a host key lets other repositories search on", "[keychain]") {
  Sandbox sb;
  write_text(sb.runtime_auth(), auths({{"reg.example.com/team/app", "appuser:apppass"}}));
  write_text(sb.docker_config(), auths({{"reg.example.com", "dockeruser:dockerpass"}}));
  check_creds(default_keychain().lookup("reg.example.com", "team/app"), "appuser", "apppass",
              sb.runtime_auth().string());
  check_creds(default_keychain().lookup("reg.example.com", "other"), "dockeruser", "dockerpass",
              sb.docker_config().string());
}

// ---- entry contents ----------------------------------------------------------------

TEST_CASE("identitytoken makes an identity-token credential", "[keychain]") {
  Sandbox sb;
  SECTION("with a user from auth") {
    write_text(sb.docker_config(), "{\"auths\": {\"reg.example.com\": {\"auth\": \"" +
                                       b64("tokuser:") + "\", \"identitytoken\": \"tok-123\"}}}");
    Credentials c = default_keychain().lookup("reg.example.com");
    CHECK(c.identity_token);
    CHECK(c.username == "tokuser");
    CHECK(c.secret == "tok-123");
  }
  SECTION("alone") {
    write_text(sb.docker_config(),
               "{\"auths\": {\"reg.example.com\": {\"identitytoken\": \"tok-456\"}}}");
    Credentials c = default_keychain().lookup("reg.example.com");
    CHECK(c.identity_token);
    CHECK(c.username.empty());
    CHECK(c.secret == "tok-456");
    CHECK_FALSE(c.empty());
  }
}

TEST_CASE("username and password fields are an entry too", "[keychain]") {
  Sandbox sb;
  write_text(sb.docker_config(), "{\"auths\": {\"reg.example.com\": {\"username\": \"fielduser\", "
                                 "\"password\": \"field:pass\"}}}");
  check_creds(default_keychain().lookup("reg.example.com"), "fielduser", "field:pass",
              sb.docker_config().string());
}

TEST_CASE("auth base64 with and without padding, password with colons", "[keychain]") {
  Sandbox sb;
  std::string encoded = b64("user:pa:ss");  // 10 bytes: ends in "=="
  REQUIRE(encoded.ends_with("=="));
  std::string unpadded = encoded.substr(0, encoded.size() - 2);
  auto value = GENERATE_COPY(as<std::string>{}, encoded, unpadded);
  write_text(sb.docker_config(), "{\"auths\": {\"reg.example.com\": {\"auth\": \"" + value + "\"}}}");
  check_creds(default_keychain().lookup("reg.example.com"), "user", "pa:ss",
              sb.docker_config().string());
}

TEST_CASE("malformed base64 is an error naming the file and the key", "[keychain]") {
  Sandbox sb;
  auto value = GENERATE(as<std::string>{}, "not base64!", "dXNlcjpwYXNz=x", "dXNlcjpwYXNzd", "dXNlcjpwYXNz=",
                        "dXNlcjpwYXNz===", "dXNl cjpwYXNz");
  INFO("auth: " << value);
  write_text(sb.docker_config(), "{\"auths\": {\"reg.example.com\": {\"auth\": \"" + value + "\"}}}");
  std::string msg = error_of([] { (void)default_keychain().lookup("reg.example.com"); });
  CHECK_THAT(msg, Contains(sb.docker_config().string()));
  CHECK_THAT(msg, Contains("\"reg.example.com\""));
  CHECK_THAT(msg, Contains("base64"));
}

TEST_CASE("malformed files are errors that never contain the secret", "[keychain]") {
  Sandbox sb;
  const std::string s = kSecret;
  auto content = GENERATE_COPY(as<std::string>{},
      // truncated JSON, after a valid auth
      "{\"auths\": {\"reg.example.com\": {\"auth\": \"" + b64("user:" + s) + "\"}",
      // trailing comma
      "{\"auths\": {\"reg.example.com\": {\"auth\": \"" + b64("user:" + s) + "\",}}}",
      // the password in clear where base64 belongs
      "{\"auths\": {\"reg.example.com\": {\"auth\": \"user:" + s + "\"}}}",
      // base64 of text without a colon
      "{\"auths\": {\"reg.example.com\": {\"auth\": \"" + b64(s) + "\"}}}",
      // an entry that is a string, a password that is not one
      "{\"auths\": {\"reg.example.com\": \"" + s + "\"}}",
      "{\"auths\": {\"reg.example.com\": {\"username\": \"u\", \"password\": [\"" + s + "\"]}}}",
      "{\"auths\": [\"" + s + "\"]}", "{\"credsStore\": [\"" + s + "\"]}",
      "{\"credHelpers\": {\"reg.example.com\": [\"" + s + "\"]}}", "[\"" + s + "\"]", s);
  INFO("content: " << content);
  fs::path file = sb.runtime_auth();
  write_text(file, content);
  std::string msg = error_of([] { (void)default_keychain().lookup("reg.example.com"); });
  INFO("message: " << msg);
  CHECK_THAT(msg, Contains(file.string()));
  CHECK_THAT(msg, !Contains(s));
  CHECK_THAT(msg, !Contains(b64("user:" + s)));
  CHECK_THAT(msg, !Contains("TOPSECRET"));
}

TEST_CASE("an unreadable credentials file is an error, not a skip", "[keychain]") {
  Sandbox sb;
  write_text(sb.docker_config(), auths({{"reg.example.com", "u:p"}}));
  fs::create_directories(sb.user_auth());  // a directory where the file should be
  std::string msg = error_of([] { (void)default_keychain().lookup("reg.example.com"); });
  CHECK_THAT(msg, Contains(sb.user_auth().string()));
}

// Root reads files regardless of their mode, so this case carries the hidden
// tag [.nonroot], not [keychain]: only the unit_nonroot meson test runs it,
// and meson reports it skipped under root.
TEST_CASE("a credentials file without read permission is an error, not a skip", "[.nonroot]") {
  if (::geteuid() == 0) FAIL("root reads any file (meson test unit_nonroot skips under root)");
  Sandbox sb;
  write_text(sb.docker_config(), auths({{"reg.example.com", "u:p"}}));
  write_text(sb.user_auth(), auths({{"reg.example.com", "u:p"}}));
  fs::permissions(sb.user_auth(), fs::perms::none);
  std::string msg = error_of([] { (void)default_keychain().lookup("reg.example.com"); });
  CHECK_THAT(msg, Contains(sb.user_auth().string()));
}

// ---- credential helpers -----------------------------------------------------------

TEST_CASE("credHelpers runs docker-credential-NAME with the host on stdin", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  write_text(sb.docker_config(), "{\"credHelpers\": {\"helper.example.com\": \"test\"}}");
  Credentials c = default_keychain().lookup("helper.example.com");
  check_creds(c, "helperuser", "helpersecret", "docker-credential-test");
  CHECK(sb.helper_log() == "helper.example.com\n");
}

TEST_CASE("credsStore gets Docker Hub's legacy server URL", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  write_text(sb.docker_config(),
             "{\"auths\": {\"https://index.docker.io/v1/\": {}}, \"credsStore\": \"test\"}");
  check_creds(default_keychain().lookup("docker.io", "library/python"), "hubuser", "hubsecret",
              "docker-credential-test");
  CHECK(sb.helper_log() == "https://index.docker.io/v1/\n");
}

TEST_CASE("a helper's <token> user means an identity token", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  write_text(sb.docker_config(), "{\"credsStore\": \"test\"}");
  Credentials c = default_keychain().lookup("token.example.com");
  CHECK(c.identity_token);
  CHECK(c.username.empty());
  CHECK(c.secret == "refresh-token-1");
  CHECK(c.source == "docker-credential-test");
}

TEST_CASE("precedence in one file: credHelpers, then auths, then credsStore", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  const std::string inline_entry =
      "\"auths\": {\"helper.example.com\": {\"auth\": \"" + b64("inlineuser:inlinepass") + "\"}}";
  SECTION("credHelpers beats credsStore and the inline entry") {
    write_text(sb.docker_config(), "{" + inline_entry +
                                       ", \"credsStore\": \"testalt\", "
                                       "\"credHelpers\": {\"helper.example.com\": \"test\"}}");
    check_creds(default_keychain().lookup("helper.example.com"), "helperuser", "helpersecret",
                "docker-credential-test");
  }
  SECTION("an inline entry is used before credsStore runs") {
    write_text(sb.docker_config(), "{" + inline_entry + ", \"credsStore\": \"test\"}");
    check_creds(default_keychain().lookup("helper.example.com"), "inlineuser", "inlinepass",
                sb.docker_config().string());
    CHECK(sb.helper_log().empty());
  }
  SECTION("credHelpers for another host does not apply") {
    write_text(sb.docker_config(), "{\"credsStore\": \"testalt\", "
                                   "\"credHelpers\": {\"other.example.com\": \"test\"}}");
    check_creds(default_keychain().lookup("helper.example.com"), "altuser", "altsecret",
                "docker-credential-testalt");
  }
  SECTION("credHelpers keys may use the URL forms too") {
    write_text(sb.docker_config(),
               "{\"credHelpers\": {\"https://helper.example.com\": \"test\"}}");
    check_creds(default_keychain().lookup("helper.example.com"), "helperuser", "helpersecret",
                "docker-credential-test");
  }
}

TEST_CASE("a helper without credentials means anonymous, and the search goes on", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  SECTION("credsStore alone: anonymous, no error") {
    write_text(sb.docker_config(), "{\"credsStore\": \"testnotfound\"}");
    CHECK(default_keychain().lookup("reg.example.com").empty());
  }
  SECTION("docker-credential-test for a host it does not know") {
    write_text(sb.docker_config(), "{\"credHelpers\": {\"unknown.example.com\": \"test\"}}");
    CHECK(default_keychain().lookup("unknown.example.com").empty());
    CHECK(sb.helper_log() == "unknown.example.com\n");
  }
  SECTION("an empty answer counts as none") {
    write_text(sb.runtime_auth(), "{\"credsStore\": \"testempty\"}");
    write_text(sb.docker_config(), auths({{"reg.example.com", "dockeruser:dockerpass"}}));
    check_creds(default_keychain().lookup("reg.example.com"), "dockeruser", "dockerpass",
                sb.docker_config().string());
  }
  SECTION("a host helper without credentials falls back to the inline entry") {
    write_text(sb.docker_config(),
               "{\"credHelpers\": {\"reg.example.com\": \"testnotfound\"}, \"auths\": "
               "{\"reg.example.com\": {\"auth\": \"" + b64("inlineuser:inlinepass") + "\"}}}");
    check_creds(default_keychain().lookup("reg.example.com"), "inlineuser", "inlinepass",
                sb.docker_config().string());
  }
  SECTION("an earlier file's helper without credentials lets a later file answer") {
    write_text(sb.runtime_auth(), "{\"credHelpers\": {\"reg.example.com\": \"testnotfound\"}}");
    write_text(sb.docker_config(), auths({{"reg.example.com", "dockeruser:dockerpass"}}));
    check_creds(default_keychain().lookup("reg.example.com"), "dockeruser", "dockerpass",
                sb.docker_config().string());
  }
}

TEST_CASE("a failing helper is an error with its name, status and first stderr line only",
          "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  write_text(sb.docker_config(), "{\"credsStore\": \"testfail\"}");
  std::string msg = error_of([] { (void)default_keychain().lookup("reg.example.com"); });
  INFO("message: " << msg);
  CHECK_THAT(msg, Contains("docker-credential-testfail"));
  CHECK_THAT(msg, Contains("exit status 3"));
  CHECK_THAT(msg, Contains("boom: vault is sealed"));
  CHECK_THAT(msg, Contains(sb.docker_config().string()));
  CHECK_THAT(msg, !Contains(kSecret));
  CHECK_THAT(msg, !Contains("second-"));
}

TEST_CASE("a hanging helper is killed after the timeout", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  write_text(sb.docker_config(), "{\"credHelpers\": {\"reg.example.com\": \"testhang\"}}");
  auto start = std::chrono::steady_clock::now();
  std::string msg =
      error_of([] { (void)default_keychain(std::chrono::milliseconds(300)).lookup("reg.example.com"); });
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK_THAT(msg, Contains("docker-credential-testhang"));
  CHECK_THAT(msg, Contains("300 ms"));
  CHECK(elapsed >= std::chrono::milliseconds(250));
  CHECK(elapsed < std::chrono::seconds(5));
}

TEST_CASE("other helper failures are errors that never show its output", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  SECTION("not on PATH") {
    write_text(sb.docker_config(), "{\"credsStore\": \"nosuchhelper-xyz\"}");
    std::string msg = error_of([] { (void)default_keychain().lookup("reg.example.com"); });
    CHECK_THAT(msg, Contains("docker-credential-nosuchhelper-xyz"));
    CHECK_THAT(msg, Contains("PATH"));
  }
  SECTION("invalid JSON on stdout") {
    write_text(sb.docker_config(), "{\"credsStore\": \"testbadjson\"}");
    std::string msg = error_of([] { (void)default_keychain().lookup("reg.example.com"); });
    CHECK_THAT(msg, Contains("docker-credential-testbadjson"));
    CHECK_THAT(msg, !Contains(kSecret));
  }
  SECTION("a name with a slash is not run as a path") {
    write_text(sb.docker_config(), "{\"credsStore\": \"../bin/docker-credential-test\"}");
    std::string msg = error_of([] { (void)default_keychain().lookup("helper.example.com"); });
    CHECK_THAT(msg, Contains("invalid credential helper name"));
    CHECK(sb.helper_log().empty());
  }
}

TEST_CASE("a helper that never reads stdin still works", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  write_text(sb.docker_config(), "{\"credsStore\": \"testnoread\"}");
  check_creds(default_keychain().lookup("reg.example.com"), "n", "noreadsecret",
              "docker-credential-testnoread");
}

TEST_CASE("lookup caches answers per registry and repository", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  write_text(sb.docker_config(), "{\"credsStore\": \"test\"}");
  Keychain k = default_keychain();
  for (int i = 0; i < 3; ++i) {
    check_creds(k.lookup("helper.example.com", "a/b"), "helperuser", "helpersecret",
                "docker-credential-test");
    CHECK(k.lookup("unknown.example.com").empty());
  }
  CHECK(sb.helper_log() == "helper.example.com\nunknown.example.com\n");
  // Docker Hub's aliases share one answer.
  (void)k.lookup("docker.io");
  (void)k.lookup("index.docker.io");
  CHECK(sb.helper_log() == "helper.example.com\nunknown.example.com\nhttps://index.docker.io/v1/\n");
  // A moved Keychain keeps its cache.
  Keychain moved = std::move(k);
  (void)moved.lookup("helper.example.com", "a/b");
  CHECK(sb.helper_log() == "helper.example.com\nunknown.example.com\nhttps://index.docker.io/v1/\n");
}

TEST_CASE("concurrent lookups run a helper once", "[keychain]") {
  Sandbox sb;
  sb.standard_helpers();
  write_text(sb.docker_config(), "{\"credsStore\": \"test\"}");
  Keychain k = default_keychain();
  std::vector<Credentials> got(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&k, &got, i] { got[i] = k.lookup("helper.example.com"); });
  for (auto& t : threads) t.join();
  for (const Credentials& c : got) check_creds(c, "helperuser", "helpersecret", "docker-credential-test");
  CHECK(sb.helper_log() == "helper.example.com\n");
}
