// The low-level SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP,
// which has no way to export or import a hash's state (Sha256::State). They
// run the same code (SHA-NI included); the state's layout is checked by
// unit tests against hashing in one go.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "oci/digest.h"

#include "base/error.h"

namespace dockless {

namespace {
bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
}  // namespace

Digest Digest::parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    throw Error("invalid digest \"" + std::string(text) + "\": expected sha256:<64 hex digits>");
  std::string_view algo = text.substr(0, colon);
  std::string_view hex = text.substr(colon + 1);
  if (algo != "sha256")
    throw Error("unsupported digest algorithm \"" + std::string(algo) + "\" in \"" +
                std::string(text) + "\": only sha256 is supported");
  if (hex.size() != 64)
    throw Error("invalid digest \"" + std::string(text) + "\": sha256 needs 64 hex digits, got " +
                std::to_string(hex.size()));
  for (char c : hex)
    if (!is_lower_hex(c))
      throw Error("invalid digest \"" + std::string(text) +
                  "\": hex digits must be 0-9 or a-f (lowercase)");
  Digest d;
  d.hex_ = std::string(hex);
  return d;
}

Digest Digest::from_sha256_bytes(const unsigned char* bytes) {
  static const char kHex[] = "0123456789abcdef";
  Digest d;
  d.hex_.resize(64);
  for (int i = 0; i < 32; ++i) {
    d.hex_[2 * i] = kHex[bytes[i] >> 4];
    d.hex_[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return d;
}

std::array<unsigned char, 32> Digest::sha256_bytes() const {
  auto nibble = [](char c) { return static_cast<unsigned char>(c <= '9' ? c - '0' : c - 'a' + 10); };
  std::array<unsigned char, 32> out{};
  for (std::size_t i = 0; i < 32; ++i)
    out[i] = static_cast<unsigned char>(nibble(hex_[2 * i]) << 4 | nibble(hex_[2 * i + 1]));
  return out;
}

Sha256::Sha256() {
  if (SHA256_Init(&ctx_) != 1) throw Error("cannot initialise SHA-256 (OpenSSL)");
}

Sha256::Sha256(const State& state) : Sha256() {
  if (state.bytes % SHA256_CBLOCK != 0) throw Error("SHA-256 state not at a block boundary");
  for (std::size_t i = 0; i < 8; ++i) ctx_.h[i] = state.h[i];
  // Nl/Nh count bits, as a 64-bit number split in two.
  const std::uint64_t bits = state.bytes * 8;
  ctx_.Nl = static_cast<SHA_LONG>(bits & 0xffffffffu);
  ctx_.Nh = static_cast<SHA_LONG>(bits >> 32);
  ctx_.num = 0;
}

void Sha256::update(const void* data, std::size_t size) {
  if (size > 0 && SHA256_Update(&ctx_, data, size) != 1) throw Error("SHA-256 update failed");
}

std::uint64_t Sha256::size() const { return ((std::uint64_t(ctx_.Nh) << 32) | ctx_.Nl) / 8; }

Sha256::State Sha256::block_state() const {
  State s;
  for (std::size_t i = 0; i < 8; ++i) s.h[i] = ctx_.h[i];
  s.bytes = size() - ctx_.num;
  return s;
}

Digest Sha256::finish() {
  unsigned char out[SHA256_DIGEST_LENGTH];
  if (SHA256_Final(out, &ctx_) != 1) throw Error("SHA-256 final failed");
  return Digest::from_sha256_bytes(out);
}

Digest sha256_of(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

}  // namespace dockless
