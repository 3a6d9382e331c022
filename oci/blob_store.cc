#include "oci/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/file_util.h"

namespace dockless {

// The temp name is beside a placeholder: the blob's own name is known at commit().
BlobWriter::BlobWriter(const BlobStore& store)
    : store_(store), file_(store.blob_dir() / "blob"), hash_(std::make_unique<Sha256>()) {}

BlobWriter::~BlobWriter() {
  if (follower_) follower_->abandon();  // no-op once ended
}

void BlobWriter::follow(std::shared_ptr<GrowingFile> reader) {
  try {
    reader->open(file_.temp_path());
  } catch (...) {
    reader->abandon();  // its reader must not wait for a blob it cannot read
    throw;
  }
  reader->grew(size_);
  follower_ = std::move(reader);
}

void BlobWriter::reset() {
  if (follower_) {  // what it read is no longer the blob
    follower_->abandon();
    follower_.reset();
  }
  file_.truncate();
  hash_ = std::make_unique<Sha256>();
  size_ = 0;
}

void BlobWriter::write(const void* data, std::size_t size) {
  hash_->update(data, size);
  file_.write(data, size);
  size_ += size;
  if (follower_) follower_->grew(size_);
}

Digest BlobWriter::commit(const std::optional<Digest>& expected) {
  Digest actual = hash_->finish();
  if (expected && *expected != actual)
    throw Error("digest mismatch: expected " + expected->str() + ", got " + actual.str() +
                " (nothing stored)");
  if (follower_) follower_->ended();  // its upload need not wait for the fsync
  file_.commit_as(store_.path_of(actual));
  return actual;
}

BlobStore::BlobStore(std::filesystem::path root) : root_(std::move(root)) {
  std::error_code ec;
  std::filesystem::create_directories(blob_dir(), ec);
  if (ec) throw Error("cannot create " + blob_dir().string() + ": " + ec.message());
}

bool BlobStore::contains(const Digest& d) const {
  struct stat st;
  return ::stat(path_of(d).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::uint64_t BlobStore::size_of(const Digest& d) const {
  struct stat st;
  if (::stat(path_of(d).c_str(), &st) != 0) throw_errno("blob " + d.str() + " in " + root_.string());
  return static_cast<std::uint64_t>(st.st_size);
}

std::string BlobStore::read(const Digest& d) const {
  std::string bytes;
  try {
    bytes = read_file(path_of(d));
  } catch (const Error&) {
    throw Error("blob " + d.str() + " is missing from " + root_.string());
  }
  Digest actual = sha256_of(bytes);
  if (actual != d)
    throw Error("blob " + d.str() + " in " + root_.string() + " is corrupt: its content has digest " +
                actual.str());
  return bytes;
}

Digest BlobStore::put(std::string_view bytes, const std::optional<Digest>& expected) const {
  // A file already there with these very bytes is kept (no write, no sync:
  // a rebuild stores the same base manifest and config again); any other,
  // a damaged one included, is replaced by writing through.
  const Digest d = expected ? *expected : sha256_of(bytes);
  const std::filesystem::path file = path_of(d);
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && static_cast<std::size_t>(st.st_size) == bytes.size()) {
    try {
      if (read_file(file) == bytes) return d;
    } catch (const Error&) {
      // Unreadable: written through below.
    }
  }
  BlobWriter w(*this);
  w.write(bytes.data(), bytes.size());
  return w.commit(expected);
}

namespace {
Digest hash_file(int fd, const std::string& name) {
  Sha256 h;
  char buf[1 << 16];
  for (;;) {
    std::size_t n = read_some(fd, buf, sizeof buf, name);
    if (n == 0) break;
    h.update(buf, n);
  }
  return h.finish();
}
}  // namespace

void BlobStore::import_from(const BlobStore& other, const Digest& d) const {
  if (contains(d)) return;
  std::filesystem::path src = other.path_of(d);
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throw_errno("cannot open blob " + d.str() + " in " + other.root().string());
  // Verified before it is shared: a damaged source never gets a good name here.
  Digest actual = hash_file(in.get(), src.string());
  if (actual != d)
    throw Error("blob " + d.str() + " in " + other.root().string() +
                " is corrupt: its content has digest " + actual.str());
  std::filesystem::path tmp = temp_path_beside(path_of(d));
  if (::link(src.c_str(), tmp.c_str()) == 0) {
    // Same filesystem: the hardlink shares bytes the other store verified.
    if (::rename(tmp.c_str(), path_of(d).c_str()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      throw_errno("cannot store blob " + d.str(), e);
    }
    fsync_dir(blob_dir());
    return;
  }
  if (::lseek(in.get(), 0, SEEK_SET) != 0) throw_errno("cannot rewind " + src.string());
  BlobWriter w(*this);
  char buf[1 << 16];
  for (;;) {
    std::size_t n = read_some(in.get(), buf, sizeof buf, src.string());
    if (n == 0) break;
    w.write(buf, n);
  }
  w.commit(d);
}

}  // namespace dockless
