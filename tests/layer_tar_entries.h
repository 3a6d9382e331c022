// Test helper (header only): a ByteSink into a string and a libarchive reader
// that lists a tar's entries, for the tests of the layer writers.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "layers/byte_sink.h"

namespace dockless::test {

class StringByteSink final : public ByteSink {
 public:
  void write(const void* data, std::size_t size) override {
    bytes.append(static_cast<const char*>(data), size);
  }
  void finish() override { ++finishes; }
  std::string bytes;
  int finishes = 0;
};

struct LayerEntry {
  std::string path;  // without a trailing '/'
  unsigned type = 0;
  unsigned perm = 0;
  std::int64_t uid = -1, gid = -1;
  std::int64_t mtime = 0;
  std::string symlink, hardlink, data;
  unsigned rdevmajor = 0, rdevminor = 0;
  std::map<std::string, std::string> xattrs;
};

inline std::vector<LayerEntry> read_layer_entries(const std::string& bytes) {
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  REQUIRE(archive_read_open_memory(a, bytes.data(), bytes.size()) == ARCHIVE_OK);
  std::vector<LayerEntry> out;
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    REQUIRE(r == ARCHIVE_OK);
    LayerEntry t;
    t.path = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    while (!t.path.empty() && t.path.back() == '/') t.path.pop_back();
    t.type = archive_entry_filetype(e);
    t.perm = archive_entry_perm(e);
    t.uid = archive_entry_uid(e);
    t.gid = archive_entry_gid(e);
    t.mtime = archive_entry_mtime(e);
    t.symlink = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
    t.hardlink = archive_entry_hardlink(e) ? archive_entry_hardlink(e) : "";
    t.rdevmajor = archive_entry_rdevmajor(e);
    t.rdevminor = archive_entry_rdevminor(e);
    archive_entry_xattr_reset(e);
    const char* xname;
    const void* xvalue;
    size_t xsize;
    while (archive_entry_xattr_next(e, &xname, &xvalue, &xsize) == ARCHIVE_OK)
      t.xattrs[xname] = std::string(static_cast<const char*>(xvalue), xsize);
    char buf[65536];
    for (;;) {
      la_ssize_t n = archive_read_data(a, buf, sizeof buf);
      REQUIRE(n >= 0);
      if (n == 0) break;
      t.data.append(buf, static_cast<std::size_t>(n));
    }
    out.push_back(std::move(t));
  }
  archive_read_free(a);
  return out;
}

inline std::vector<std::string> layer_paths(const std::vector<LayerEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.path);
  return out;
}

inline const LayerEntry& layer_entry(const std::vector<LayerEntry>& entries,
                                     const std::string& path) {
  for (const auto& e : entries)
    if (e.path == path) return e;
  FAIL("no entry " << path);
  throw std::logic_error("unreachable");
}

}  // namespace dockless::test
