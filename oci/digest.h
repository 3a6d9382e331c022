// Content digests (`sha256:<64 hex>`) and a streaming SHA-256 hasher.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace dockless {

/// A validated `sha256:<64 lowercase hex>` digest. Other algorithms are
/// refused: every registry and runtime we target speaks sha256.
class Digest {
 public:
  /// Throws Error naming what is wrong with `text`.
  static Digest parse(std::string_view text);
  /// From 32 raw bytes of a SHA-256 result.
  static Digest from_sha256_bytes(const unsigned char* bytes);

  const std::string& hex() const { return hex_; }
  std::string str() const { return "sha256:" + hex_; }
  /// The first n hex characters, for short display.
  std::string short_hex(std::size_t n = 12) const { return hex_.substr(0, n); }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  std::string hex_;
};

/// Incremental SHA-256 (OpenSSL EVP; uses the CPU's SHA instructions).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  /// The digest of everything fed so far. The hasher cannot be used after.
  Digest finish();

 private:
  EVP_MD_CTX* ctx_;
};

/// The SHA-256 digest of a byte string.
Digest sha256_of(std::string_view data);

}  // namespace dockless
