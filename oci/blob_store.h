// Content-addressed blob storage: <root>/blobs/sha256/<hex>, as in an OCI
// image layout and in dockless's own cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "base/file_util.h"
#include "base/growing_file.h"

namespace dockless {

class BlobStore;

/// Streams one blob into the store. Bytes go to a temp file in the blob
/// directory while being hashed; commit() fsyncs, checks the digest and
/// renames the file to its name. A writer dropped before commit() removes its
/// temp file, so a blob name never holds bytes that do not match it. Several
/// writers of the same blob may race: each renames identical bytes.
class BlobWriter {
 public:
  explicit BlobWriter(const BlobStore& store);
  /// A follower not ended by commit() is abandoned.
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  /// Lets `reader` read the blob as it is written: it is told of each
  /// write, and ended once commit() has checked the digest (before the
  /// fsync). Throws Error when the temp file cannot be opened again.
  void follow(std::shared_ptr<GrowingFile> reader);
  void write(const void* data, std::size_t size);
  std::uint64_t size() const { return size_; }
  /// Drops everything written so far (a download that must start over).
  void reset();
  /// Finishes the blob. If `expected` is given and differs from what was
  /// written, nothing is stored and Error names both digests.
  Digest commit(const std::optional<Digest>& expected = std::nullopt);

 private:
  const BlobStore& store_;
  AtomicFile file_;
  std::unique_ptr<Sha256> hash_;
  std::uint64_t size_ = 0;
  std::shared_ptr<GrowingFile> follower_;
};

class BlobStore {
 public:
  /// `root` holds (or will hold) blobs/sha256/. Creates that directory.
  explicit BlobStore(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path blob_dir() const { return root_ / "blobs" / "sha256"; }
  std::filesystem::path path_of(const Digest& d) const { return blob_dir() / d.hex(); }
  bool contains(const Digest& d) const;
  /// Size in bytes; throws Error if absent.
  std::uint64_t size_of(const Digest& d) const;

  /// Reads a whole blob and verifies it against its name.
  std::string read(const Digest& d) const;
  /// Stores bytes; returns their digest. With `expected`, as BlobWriter::commit.
  Digest put(std::string_view bytes, const std::optional<Digest>& expected = std::nullopt) const;
  /// Copies the blob d from another store (a hardlink when both are on one
  /// filesystem, else a verified copy). No-op if already present.
  void import_from(const BlobStore& other, const Digest& d) const;

 private:
  std::filesystem::path root_;
};

}  // namespace dockless
