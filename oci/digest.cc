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

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw Error("cannot initialise SHA-256 (OpenSSL)");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, std::size_t size) {
  if (size > 0 && EVP_DigestUpdate(ctx_, data, size) != 1) throw Error("SHA-256 update failed");
}

Digest Sha256::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, out, &len) != 1 || len != 32) throw Error("SHA-256 final failed");
  return Digest::from_sha256_bytes(out);
}

Digest sha256_of(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

}  // namespace dockless
