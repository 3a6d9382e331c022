// libarchive's handles as owning C++ types, and the one tar writer that the
// layer code and the docker-archive writer share.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <cstddef>
#include <exception>
#include <memory>
#include <string>

#include "layers/byte_sink.h"

namespace dockless {

struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct ArchiveEntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
/// From archive_read_new().
using ArchiveReadHandle = std::unique_ptr<archive, ArchiveReadFree>;
/// From archive_write_new() or archive_write_disk_new().
using ArchiveWriteHandle = std::unique_ptr<archive, ArchiveWriteFree>;
using ArchiveEntryHandle = std::unique_ptr<archive_entry, ArchiveEntryFree>;

/// archive_read_new(), or Error when out of memory.
ArchiveReadHandle new_archive_reader();
/// archive_entry_new(), or Error when out of memory.
ArchiveEntryHandle new_archive_entry();
/// archive_error_string, never null.
std::string archive_message(archive* a);

/// A pax_restricted tar stream pushed into a ByteSink. Exceptions thrown by
/// the sink cannot cross libarchive's C frames: they are parked and
/// rethrown from the call that wrote.
class TarStreamWriter {
 public:
  explicit TarStreamWriter(ByteSink& out);
  TarStreamWriter(const TarStreamWriter&) = delete;
  TarStreamWriter& operator=(const TarStreamWriter&) = delete;

  /// `name` only words errors.
  void header(archive_entry* e, const std::string& name);
  void data(const void* buf, std::size_t size, const std::string& name);
  /// The bytes written so far, the current entry's padding included: where
  /// the next header starts.
  std::uint64_t offset();
  /// Writes the end-of-archive blocks (the sink is not finished: its owner
  /// decides when).
  void close();

 private:
  static la_ssize_t on_write(archive*, void* self, const void* buf, size_t size);
  [[noreturn]] void fail(const std::string& what);

  ByteSink& out_;
  ArchiveWriteHandle a_;
  std::exception_ptr pending_;
};

}  // namespace dockless
