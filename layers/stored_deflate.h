// Bytes that deflate cannot shrink (compressed or random data: archives,
// images, the packed device code in CUDA and torch libraries), spotted
// cheaply and written as deflate's stored blocks: deflating them costs ~2 ns
// a byte (most of a cold build's compression time on such wheels) to gain
// nothing, since the deflater falls back to stored blocks for them anyway.
//
// The choice depends on the bytes alone (integer arithmetic only), so a
// layer's bytes stay the same on every machine.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dockless {

/// Blocks shorter than this are always deflated (the sample would be most of them).
constexpr std::size_t kStoredMinBlock = std::size_t{64} << 10;

/// Whether the byte values of `p[0, n)` (n >= kStoredMinBlock) are spread
/// as evenly as random bytes: a chi-square test over 64 slices of 128 bytes
/// across the block. Deflate's Huffman stage gains nothing on such bytes;
/// whether its matches would is the caller's trial.
bool bytes_look_random(const std::uint8_t* p, std::size_t n);

/// The size of `n` bytes as stored deflate blocks (5 bytes of header per
/// 65,535 bytes; an empty input is one empty block).
std::size_t stored_deflate_size(std::size_t n);

/// Writes `p[0, n)` as stored deflate blocks into `out` (stored_deflate_size
/// bytes, starting and ending on a byte boundary); the last one is marked
/// final when `final_block`. Returns the bytes written.
std::size_t write_stored_deflate(const std::uint8_t* p, std::size_t n, bool final_block, std::uint8_t* out);

}  // namespace dockless
