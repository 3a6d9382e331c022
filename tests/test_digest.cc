// Tests for oci/digest: parsing of "sha256:<hex>" digests and the streaming
// SHA-256 hasher, checked against the FIPS 180-2 test vectors.
#include "oci/digest.h"

#include <catch2/catch.hpp>

#include <cstddef>
#include <set>
#include <string>

#include "base/error.h"

namespace {

using dockless::Digest;
using dockless::Error;
using dockless::Sha256;
using dockless::sha256_of;

constexpr const char* kEmptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kAbcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
// FIPS 180-2 appendix B.2 (two blocks) and B.3 (one million 'a').
constexpr const char* kTwoBlockMsg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr const char* kTwoBlockHex =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr const char* kMillionAHex =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

// Parsing `text` must throw dockless::Error whose message contains `needle`.
void require_parse_error(const std::string& text, const std::string& needle) {
  INFO("input: \"" << text << "\"");
  try {
    (void)Digest::parse(text);
    FAIL("Digest::parse accepted an invalid digest");
  } catch (const Error& e) {
    INFO("message: " << e.what());
    CHECK_THAT(e.what(), Catch::Matchers::Contains(needle));
  }
}

}  // namespace

TEST_CASE("Digest::parse accepts sha256 with 64 lowercase hex digits", "[digest]") {
  Digest d = Digest::parse(std::string("sha256:") + kAbcHex);
  CHECK(d.hex() == kAbcHex);
  CHECK(d.str() == std::string("sha256:") + kAbcHex);
  CHECK(d.short_hex() == "ba7816bf8f01");
  CHECK(d.short_hex(7) == "ba7816b");
  CHECK(d.short_hex(100) == kAbcHex);  // longer than the digest: the whole hex

  // str() parses back to the same digest.
  CHECK(Digest::parse(d.str()) == d);

  std::string all_digits(64, '0');
  CHECK(Digest::parse("sha256:" + all_digits).hex() == all_digits);
  std::string all_letters(64, 'f');
  CHECK(Digest::parse("sha256:" + all_letters).hex() == all_letters);
}

TEST_CASE("Digest::parse refuses other algorithms", "[digest]") {
  require_parse_error(std::string("sha512:") + kAbcHex, "sha512");
  require_parse_error(std::string("md5:") + kAbcHex, "md5");
  require_parse_error(std::string("SHA256:") + kAbcHex, "SHA256");
  require_parse_error(std::string("sha256+b64:") + kAbcHex, "sha256+b64");
  require_parse_error(std::string(":") + kAbcHex, "");
}

TEST_CASE("Digest::parse refuses a wrong number of hex digits", "[digest]") {
  std::string hex = kAbcHex;
  require_parse_error("sha256:" + hex.substr(0, 63), "63");
  require_parse_error("sha256:" + hex + "0", "65");
  require_parse_error("sha256:", "0");
  require_parse_error("sha256:abc", "sha256:abc");
  // A trailing newline (e.g. read from a file) is not silently accepted.
  require_parse_error("sha256:" + hex + "\n", "sha256:");
  require_parse_error(" sha256:" + hex, "sha256");
}

TEST_CASE("Digest::parse refuses uppercase and non-hex characters", "[digest]") {
  std::string upper = kAbcHex;
  for (char& c : upper)
    if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
  require_parse_error("sha256:" + upper, "lowercase");

  std::string one_upper = kAbcHex;
  one_upper[10] = 'B';
  require_parse_error("sha256:" + one_upper, "sha256:" + one_upper);

  std::string with_g = kAbcHex;
  with_g[63] = 'g';
  require_parse_error("sha256:" + with_g, "sha256:" + with_g);

  std::string with_space = kAbcHex;
  with_space[0] = ' ';
  require_parse_error("sha256:" + with_space, "hex");

  // A 64-char string with a second colon is not hex either.
  std::string with_colon = kAbcHex;
  with_colon[5] = ':';
  require_parse_error("sha256:" + with_colon, "hex");
}

TEST_CASE("Digest::parse refuses a missing colon or an empty string", "[digest]") {
  require_parse_error(kAbcHex, kAbcHex);
  require_parse_error(std::string("sha256") + kAbcHex, "sha256");
  require_parse_error("", "invalid digest");
  require_parse_error("sha256", "sha256");
}

TEST_CASE("SHA-256 of the standard test vectors", "[digest]") {
  CHECK(sha256_of("").hex() == kEmptyHex);
  CHECK(sha256_of("abc").hex() == kAbcHex);
  CHECK(sha256_of(kTwoBlockMsg).hex() == kTwoBlockHex);
  CHECK(sha256_of(std::string(1000000, 'a')).hex() == kMillionAHex);
  CHECK(sha256_of("abc").str() == std::string("sha256:") + kAbcHex);

  // A hasher fed nothing (or only empty updates) gives the empty digest.
  Sha256 h;
  h.update("", 0);
  h.update(std::string_view());
  CHECK(h.finish().hex() == kEmptyHex);
}

TEST_CASE("Streaming SHA-256 in chunks equals the one-shot digest", "[digest]") {
  // Bytes of every value, not only text, in a buffer spanning many blocks.
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>((i * 131 + i / 7) & 0xff));
  const Digest one_shot = sha256_of(data);

  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{63}, std::size_t{64},
                            std::size_t{65}, std::size_t{4096}, std::size_t{99999}}) {
    INFO("chunk size " << chunk);
    Sha256 h;
    for (std::size_t pos = 0; pos < data.size(); pos += chunk)
      h.update(data.data() + pos, std::min(chunk, data.size() - pos));
    CHECK(h.finish() == one_shot);
  }

  // The million-'a' vector fed in uneven pieces.
  Sha256 h;
  std::size_t fed = 0;
  for (std::size_t piece = 1; fed < 1000000; piece = piece * 2 + 1) {
    std::size_t n = std::min(piece, 1000000 - fed);
    h.update(std::string(n, 'a'));
    fed += n;
  }
  CHECK(h.finish().hex() == kMillionAHex);
}

TEST_CASE("Digest::from_sha256_bytes hex-encodes all 32 bytes", "[digest]") {
  unsigned char bytes[32];
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<unsigned char>(i * 8 + 7);
  Digest d = Digest::from_sha256_bytes(bytes);
  CHECK(d.hex() == "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
  CHECK(d.hex().size() == 64);
  // It is a valid digest: parse accepts its text form.
  CHECK(Digest::parse(d.str()) == d);
}

TEST_CASE("Digests compare by value and order consistently", "[digest]") {
  Digest a = sha256_of("a");
  Digest a2 = Digest::parse(a.str());
  Digest b = sha256_of("b");
  CHECK(a == a2);
  CHECK_FALSE(a == b);
  CHECK(a != b);
  CHECK(((a < b) != (b < a)));
  std::set<Digest> set{a, b, a2};
  CHECK(set.size() == 2);
}

TEST_CASE("A SHA-256 state taken at a block boundary resumes to the same digest", "[digest]") {
  std::string data;
  for (int i = 0; i < 300000; ++i) data.push_back(static_cast<char>((i * 193 + i / 11) & 0xff));
  const Digest one_shot = sha256_of(data);

  // Cut points on and off 64-byte boundaries (past 4 GiB: the next test).
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65},
                          std::size_t{4095}, std::size_t{131072}, std::size_t{299999}}) {
    INFO("cut at " << cut);
    Sha256 first;
    first.update(data.data(), cut);
    CHECK(first.size() == cut);
    const Sha256::State st = first.block_state();
    CHECK(st.bytes == cut / 64 * 64);
    // Another hasher, as in another process: only the state crosses.
    Sha256 resumed(st);
    CHECK(resumed.size() == st.bytes);
    resumed.update(data.data() + st.bytes, data.size() - st.bytes);
    CHECK(resumed.finish() == one_shot);
  }

  // A state is not taken up off a block boundary.
  Sha256::State bad;
  bad.bytes = 100;
  CHECK_THROWS_AS(Sha256(bad), Error);
}

TEST_CASE("A resumed SHA-256 counts bytes past 4 GiB (the bit count's high word)", "[digest]") {
  // The state after 2^32 + 64 bytes of zeros, made by resuming from the
  // state after 2^32 bytes: the one-go reference would hash 4 GiB, so the
  // check is instead that two routes to the same point agree.
  Sha256 a;
  std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 4096; ++i) a.update(zeros);
  a.update(zeros.data(), 64);
  const Sha256::State at = a.block_state();
  CHECK(at.bytes == (std::uint64_t{1} << 32) + 64);
  Sha256 b(at);
  b.update("tail");
  a.update("tail");
  CHECK(b.finish() == a.finish());
}
