#include "layers/stored_deflate.h"

#include <array>
#include <cstring>

namespace dockless {

namespace {
constexpr std::size_t kSlices = 64;
constexpr std::size_t kSliceBytes = 128;
constexpr std::uint64_t kSample = kSlices * kSliceBytes;  // 8 KiB
// Chi-square of the sample's 256 byte counts against an even spread, at
// most this: random bytes give 255 +- 23 (255 degrees of freedom), so 512
// is ~11 standard deviations above them; it means a Renyi entropy of at
// least ~7.9 bits a byte. Machine code, text and float arrays are far
// above it (thousands).
constexpr std::uint64_t kMaxChiSquare = 512;
constexpr std::size_t kMaxStored = 65535;
}  // namespace

bool bytes_look_random(const std::uint8_t* p, std::size_t n) {
  if (n < kStoredMinBlock) return false;
  std::array<std::uint32_t, 256> count{};
  for (std::size_t i = 0; i < kSlices; ++i) {
    const std::uint8_t* s = p + i * (n - kSliceBytes) / (kSlices - 1);
    for (std::size_t j = 0; j < kSliceBytes; ++j) ++count[s[j]];
  }
  // chi2 = (256 * sum(c^2) - N^2) / N, in integers.
  std::uint64_t squares = 0;
  for (std::uint32_t c : count) squares += std::uint64_t{c} * c;
  return 256 * squares - kSample * kSample <= kMaxChiSquare * kSample;
}

std::size_t stored_deflate_size(std::size_t n) {
  std::size_t blocks = n == 0 ? 1 : (n + kMaxStored - 1) / kMaxStored;
  return n + 5 * blocks;
}

std::size_t write_stored_deflate(const std::uint8_t* p, std::size_t n, bool final_block, std::uint8_t* out) {
  std::uint8_t* o = out;
  std::size_t left = n;
  do {
    const std::size_t len = left < kMaxStored ? left : kMaxStored;
    const bool last = len == left;
    // BFINAL, BTYPE 00, then padding to the byte: one byte, as we start on one.
    *o++ = (last && final_block) ? 1 : 0;
    *o++ = static_cast<std::uint8_t>(len & 0xff);
    *o++ = static_cast<std::uint8_t>(len >> 8);
    *o++ = static_cast<std::uint8_t>(~len & 0xff);
    *o++ = static_cast<std::uint8_t>((~len >> 8) & 0xff);
    if (len > 0) std::memcpy(o, p, len);
    o += len;
    p += len;
    left -= len;
  } while (left > 0);
  return static_cast<std::size_t>(o - out);
}

}  // namespace dockless
