// Reference parsing against docker's grammar and normalisation rules.
#include "oci/reference.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "base/error.h"

using dockless::Error;
using dockless::Reference;

namespace {

const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kDigest = "sha256:" + kHex;

struct ValidCase {
  std::string input;
  std::string registry;
  std::string repository;
  std::string tag;
  std::string digest;  // empty when the reference has none
};

struct InvalidCase {
  std::string input;
  std::string fragment;  // what the message must say is wrong
};

const std::vector<ValidCase> kValidCases = {
    // Docker Hub shorthand and its normalisation.
    {"python", "docker.io", "library/python", "latest", ""},
    {"python:3.12", "docker.io", "library/python", "3.12", ""},
    {"library/python", "docker.io", "library/python", "latest", ""},
    {"docker.io/python", "docker.io", "library/python", "latest", ""},
    {"docker.io/library/python:3.12-slim", "docker.io", "library/python", "3.12-slim", ""},
    {"index.docker.io/library/python", "docker.io", "library/python", "latest", ""},
    {"index.docker.io/python", "docker.io", "library/python", "latest", ""},
    {"user/app", "docker.io", "user/app", "latest", ""},
    {"user/app/sub", "docker.io", "user/app/sub", "latest", ""},
    // "localhost" alone is a repository name, and then ":5000" is a tag.
    {"localhost", "docker.io", "library/localhost", "latest", ""},
    {"localhost:5000", "docker.io", "library/localhost", "5000", ""},
    // Registries: localhost, domains, IPv4, IPv6, ports.
    {"localhost/app", "localhost", "app", "latest", ""},
    {"localhost:5000/app:1", "localhost:5000", "app", "1", ""},
    {"127.0.0.1:5000/a/b/c:tag", "127.0.0.1:5000", "a/b/c", "tag", ""},
    {"[::1]:5000/app", "[::1]:5000", "app", "latest", ""},
    {"[::1]/app", "[::1]", "app", "latest", ""},
    {"[2001:db8::1]:443/ns/app:v1", "[2001:db8::1]:443", "ns/app", "v1", ""},
    {"example.com:443/app", "example.com:443", "app", "latest", ""},
    {"my-registry.local/app", "my-registry.local", "app", "latest", ""},
    {"host-with-dash.example.com:65535/x", "host-with-dash.example.com:65535", "x", "latest", ""},
    {"Registry.Example.COM/app", "Registry.Example.COM", "app", "latest", ""},
    {"ghcr.io/o/r:v1.2.3-rc.1", "ghcr.io", "o/r", "v1.2.3-rc.1", ""},
    {"nvcr.io/nvidia/nemo-rl:v0.3.0", "nvcr.io", "nvidia/nemo-rl", "v0.3.0", ""},
    {"gcr.io/a/b/c/d/e:latest", "gcr.io", "a/b/c/d/e", "latest", ""},
    // Digests: alone (tag stays empty) and together with a tag.
    {"registry.example.com/team/app@" + kDigest, "registry.example.com", "team/app", "", kDigest},
    {"registry.example.com/team/app:1.0@" + kDigest, "registry.example.com", "team/app", "1.0",
     kDigest},
    {"python@" + kDigest, "docker.io", "library/python", "", kDigest},
    {"localhost:5000/app:1@" + kDigest, "localhost:5000", "app", "1", kDigest},
    // Path component separators.
    {"a__b", "docker.io", "library/a__b", "latest", ""},
    {"a--b", "docker.io", "library/a--b", "latest", ""},
    {"a---b", "docker.io", "library/a---b", "latest", ""},
    {"a.b_c-d", "docker.io", "library/a.b_c-d", "latest", ""},
    {"0/1", "docker.io", "0/1", "latest", ""},
    // Tags: \w first, then [\w.-], up to 128 characters, uppercase allowed.
    {"python:_tag", "docker.io", "library/python", "_tag", ""},
    {"python:UPPER.Case-1", "docker.io", "library/python", "UPPER.Case-1", ""},
    {"python:" + std::string(128, 't'), "docker.io", "library/python", std::string(128, 't'), ""},
    // The length limit is on the repository path; the registry does not count.
    {"example.com/" + std::string(255, 'a'), "example.com", std::string(255, 'a'), "latest", ""},
};

const std::vector<InvalidCase> kInvalidCases = {
    {"", "empty"},
    {"Python", "must be lowercase"},
    {"Foo/bar", "must be lowercase"},
    {"docker.io/Library/python", "must be lowercase"},
    {"ghcr.io/Org/app:v1", "must be lowercase"},
    {"app:", "tag after ':' is empty"},
    {":tag", "repository name is empty"},
    {"@" + kDigest, "repository name is empty"},
    {"app@", "digest after '@' is empty"},
    {"app@sha256:short", "sha256 needs 64 hex digits"},
    {"app@md5:abc", "unsupported digest algorithm"},
    {"app@" + kHex, "expected sha256:<64 hex digits>"},
    {"app@sha256:" + std::string(64, 'A'), "lowercase"},
    {"app:1@" + kDigest + "@" + kDigest, "invalid digest"},
    {"host:port/app", "invalid port \"port\""},
    {"localhost:50a0/app", "must be a number"},
    {"host.com:/app", "empty port"},
    {"localhost:99999/app", "at most 65535"},
    {"localhost:5000/", "repository path is empty"},
    {"app/", "ends with '/'"},
    {"docker.io/app/", "ends with '/'"},
    {"a//b", "empty component"},
    {"example.com//app", "empty component"},
    {"/app", "empty component"},
    {"app:" + std::string(129, 't'), "tag is too long (129 characters, maximum 128)"},
    {"app:-tag", "invalid tag \"-tag\""},
    {"app:.tag", "invalid tag"},
    {"app:ta+g", "invalid tag"},
    {"example.com/" + std::string(256, 'a'), "too long (256 characters, maximum 255)"},
    // Docker Hub adds "library/", which counts against the limit.
    {std::string(250, 'a'), "too long (258 characters"},
    {"a_-b", "invalid path component \"a_-b\""},
    {"a___b", "invalid path component"},
    {"a..b", "invalid path component"},
    {"-app", "invalid path component"},
    {"app-", "invalid path component"},
    {"_app", "invalid path component"},
    {"a b", "invalid path component"},
    {"example.com/ap$p", "invalid path component \"ap$p\""},
    {"a:b/c", "invalid port"},
    {"ex_ample.com/app", "invalid registry host \"ex_ample.com\""},
    {"-bad.com/app", "invalid registry host"},
    {"bad..com/app", "invalid registry host"},
    {"[::1/app", "unclosed '['"},
    {"[zz::1]:5000/app", "invalid IPv6 address"},
    {"[]:5000/app", "invalid IPv6 address"},
    {"[::1]x/app", "unexpected text after the IPv6 address"},
    {kHex, "image ID"},
};

}  // namespace

TEST_CASE("valid references parse into their normalised parts", "[reference]") {
  for (const ValidCase& c : kValidCases) {
    CAPTURE(c.input);
    Reference ref = Reference::parse(c.input);
    CHECK(ref.registry == c.registry);
    CHECK(ref.repository == c.repository);
    CHECK(ref.tag == c.tag);
    if (c.digest.empty()) {
      CHECK_FALSE(ref.digest.has_value());
    } else {
      REQUIRE(ref.digest.has_value());
      CHECK(ref.digest->str() == c.digest);
    }
  }
}

TEST_CASE("invalid references throw one line naming the input and the problem", "[reference]") {
  for (const InvalidCase& c : kInvalidCases) {
    CAPTURE(c.input);
    try {
      Reference::parse(c.input);
      FAIL("parse accepted an invalid reference");
    } catch (const Error& e) {
      std::string message = e.what();
      CAPTURE(message);
      CHECK(message.find(c.fragment) != std::string::npos);
      CHECK(message.find('\n') == std::string::npos);
      if (!c.input.empty()) CHECK(message.find("\"" + c.input + "\"") != std::string::npos);
    }
  }
}

TEST_CASE("str() gives the fully qualified form and parses back to the same value",
          "[reference]") {
  CHECK(Reference::parse("python").str() == "docker.io/library/python:latest");
  CHECK(Reference::parse("index.docker.io/user/app:2").str() == "docker.io/user/app:2");
  CHECK(Reference::parse("localhost:5000/app@" + kDigest).str() ==
        "localhost:5000/app@" + kDigest);
  CHECK(Reference::parse("ghcr.io/o/r:v1@" + kDigest).str() == "ghcr.io/o/r:v1@" + kDigest);
  CHECK(Reference::parse("[::1]:5000/app").str() == "[::1]:5000/app:latest");

  for (const ValidCase& c : kValidCases) {
    CAPTURE(c.input);
    Reference ref = Reference::parse(c.input);
    CHECK(Reference::parse(ref.str()) == ref);
  }
}

TEST_CASE("manifest_ref() prefers the digest over the tag", "[reference]") {
  CHECK(Reference::parse("python:3.12").manifest_ref() == "3.12");
  CHECK(Reference::parse("python").manifest_ref() == "latest");
  CHECK(Reference::parse("python@" + kDigest).manifest_ref() == kDigest);
  CHECK(Reference::parse("python:3.12@" + kDigest).manifest_ref() == kDigest);
}

TEST_CASE("api_host() maps Docker Hub to its API endpoint", "[reference]") {
  CHECK(Reference::parse("python").api_host() == "registry-1.docker.io");
  CHECK(Reference::parse("index.docker.io/library/python").api_host() == "registry-1.docker.io");
  CHECK(Reference::parse("ghcr.io/o/r").api_host() == "ghcr.io");
  CHECK(Reference::parse("localhost:5000/app").api_host() == "localhost:5000");
  CHECK(Reference::parse("[::1]:5000/app").api_host() == "[::1]:5000");
}

TEST_CASE("equivalent spellings compare equal", "[reference]") {
  CHECK(Reference::parse("python") == Reference::parse("docker.io/library/python:latest"));
  CHECK(Reference::parse("index.docker.io/python") == Reference::parse("library/python"));
  CHECK_FALSE(Reference::parse("python:3.12") == Reference::parse("python:3.13"));
  CHECK_FALSE(Reference::parse("python@" + kDigest) == Reference::parse("python:latest"));
}
