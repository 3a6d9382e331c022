#include "layers/archive_handle.h"

#include <utility>

#include "base/error.h"

namespace dockless {

ArchiveReadHandle new_archive_reader() {
  ArchiveReadHandle a(archive_read_new());
  if (!a) throw Error("libarchive: out of memory");
  return a;
}

ArchiveEntryHandle new_archive_entry() {
  ArchiveEntryHandle e(archive_entry_new());
  if (!e) throw Error("libarchive: out of memory");
  return e;
}

std::string archive_message(archive* a) {
  const char* msg = archive_error_string(a);
  return msg ? msg : "libarchive error";
}

TarStreamWriter::TarStreamWriter(ByteSink& out) : out_(out), a_(archive_write_new()) {
  if (!a_) throw Error("libarchive: out of memory");
  // The stream ends after tar's end-of-archive blocks, not padded out to a
  // 10 KiB record: the bytes are hashed, so they must not depend on blocking.
  if (archive_write_set_format_pax_restricted(a_.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a_.get(), 1) != ARCHIVE_OK ||
      archive_write_open(a_.get(), this, nullptr, &TarStreamWriter::on_write, nullptr) != ARCHIVE_OK)
    fail("cannot start tar stream");
}

void TarStreamWriter::header(archive_entry* e, const std::string& name) {
  if (archive_write_header(a_.get(), e) < ARCHIVE_WARN) fail("cannot write tar header for " + name);
}

void TarStreamWriter::data(const void* buf, std::size_t size, const std::string& name) {
  la_ssize_t n = archive_write_data(a_.get(), buf, size);
  if (n < 0 || static_cast<std::size_t>(n) != size) fail("cannot write tar data for " + name);
}

std::uint64_t TarStreamWriter::offset() {
  // An entry's padding is written when it is finished (else with the next
  // header); the first filter counts all the format wrote, buffered or not.
  if (archive_write_finish_entry(a_.get()) < ARCHIVE_WARN) fail("cannot finish tar entry");
  return static_cast<std::uint64_t>(archive_filter_bytes(a_.get(), 0));
}

void TarStreamWriter::close() {
  if (archive_write_close(a_.get()) != ARCHIVE_OK) fail("cannot finish tar stream");
}

la_ssize_t TarStreamWriter::on_write(archive*, void* self, const void* buf, size_t size) {
  auto* me = static_cast<TarStreamWriter*>(self);
  try {
    me->out_.write(buf, size);
    return static_cast<la_ssize_t>(size);
  } catch (...) {
    me->pending_ = std::current_exception();
    return -1;
  }
}

void TarStreamWriter::fail(const std::string& what) {
  if (pending_) std::rethrow_exception(std::exchange(pending_, nullptr));
  throw Error(what + ": " + archive_message(a_.get()));
}

}  // namespace dockless
