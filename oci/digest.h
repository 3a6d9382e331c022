// Content digests (`sha256:<64 hex>`) and a streaming SHA-256 hasher.
#pragma once

#include <openssl/sha.h>

#include <array>
#include <cstddef>
#include <cstdint>
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
  /// The 32 raw bytes (from_sha256_bytes's inverse).
  std::array<unsigned char, 32> sha256_bytes() const;

  const std::string& hex() const { return hex_; }
  std::string str() const { return "sha256:" + hex_; }
  /// The first n hex characters, for short display.
  std::string short_hex(std::size_t n = 12) const { return hex_.substr(0, n); }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  std::string hex_;
};

/// Incremental SHA-256 (OpenSSL; uses the CPU's SHA instructions).
class Sha256 {
 public:
  /// Where a hash stood after a whole number of 64-byte blocks: enough to
  /// take it up again in another process (a layer made again from where its
  /// last version stops matching, without hashing the bytes before).
  struct State {
    std::array<std::uint32_t, 8> h{};
    std::uint64_t bytes = 0;  ///< hashed so far; a multiple of 64
    friend bool operator==(const State&, const State&) = default;
  };

  Sha256();
  /// Takes up a hash from `state` (Error if its byte count is not a
  /// multiple of 64).
  explicit Sha256(const State& state);
  Sha256(const Sha256&) = default;
  Sha256& operator=(const Sha256&) = default;

  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  /// How many bytes were fed.
  std::uint64_t size() const;
  /// The state at the last 64-byte boundary fed: floor(size() / 64) * 64
  /// bytes. The bytes after it are the caller's to feed again on resume.
  State block_state() const;
  /// The digest of everything fed so far. The hasher cannot be used after.
  Digest finish();

 private:
  SHA256_CTX ctx_;
};

/// The SHA-256 digest of a byte string.
Digest sha256_of(std::string_view data);

}  // namespace dockless
