// spillway/io_env.hpp — the one seam through which the disk tier reaches the
// filesystem.
//
// Every open, read, write, truncate and directory operation of the disk tier
// goes through an IoEnv. The default (`IoEnv::posix()`) calls the operating
// system. Tests and the stress harness wrap it (IoEnvWrapper forwards every
// call) to inject ENOSPC, EIO, short reads and writes, latency or bit flips
// without touching the tier's code.
//
// Thread safety: implementations must be safe for concurrent calls; the disk
// tier issues reads and writes at disjoint offsets from several IO workers.
// Error convention: like the system calls they model, methods return -1 and
// set errno on failure (read/write may also return a short count).
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace spillway {

class IoEnv {
 public:
  virtual ~IoEnv() = default;

  // Creates a new directory private to this user (mode 0700) with a fresh,
  // unpredictable name under `parent`, and returns its path; "" and errno on
  // failure. Never reuses or follows an existing entry.
  virtual std::string make_private_dir(const std::string& parent) = 0;
  // Removes an (empty) directory made by make_private_dir.
  virtual int remove_dir(const std::string& path) = 0;
  // Opens a new read-write file in `dir` that has no name (O_TMPFILE, or
  // created with O_EXCL|O_NOFOLLOW, mode 0600, and unlinked at once).
  // Returns a file descriptor, or -1 and errno.
  virtual int open_unlinked_file(const std::string& dir) = 0;
  virtual int close(int fd) = 0;
  virtual ssize_t pwrite(int fd, const void* data, std::size_t n, off_t offset) = 0;
  virtual ssize_t pread(int fd, void* data, std::size_t n, off_t offset) = 0;
  virtual int ftruncate(int fd, off_t length) = 0;
  // Scatter/gather forms of pread and pwrite (one system call for several
  // ranges of memory that are contiguous in the file). The defaults call
  // this object's pread/pwrite once per range, stopping at the first short
  // count, so a wrapper that overrides only pread/pwrite still sees (and can
  // fault) every byte.
  virtual ssize_t preadv(int fd, const struct iovec* iov, int count, off_t offset) {
    return each_range(fd, iov, count, offset, false);
  }
  virtual ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t offset) {
    return each_range(fd, iov, count, offset, true);
  }
  // pwritev() with the write in flight while `meanwhile` runs on the calling
  // thread, so that the caller's work (hashing the bytes being written, say)
  // overlaps the device's. meanwhile() runs exactly once, must not change
  // the ranges being written, and may make other calls on this environment,
  // except pwritev_during. Returns what pwritev returns, once both the
  // write and meanwhile() have ended; what meanwhile() throws propagates
  // after the write has ended. Where the environment cannot overlap the two
  // it returns -1 with errno ENOSYS having run nothing: the default, so a
  // wrapper that overrides only pwrite sees every byte; the caller then
  // does the work and the write some other way.
  virtual ssize_t pwritev_during(int fd, const struct iovec* iov, int count, off_t offset,
                                 const std::function<void()>& meanwhile) {
    (void)fd, (void)iov, (void)count, (void)offset, (void)meanwhile;
    errno = ENOSYS;
    return -1;
  }
  // A second descriptor for the file open as `fd`, with O_DIRECT: reads and
  // writes through it bypass the page cache and need 4 KiB-aligned memory,
  // offsets and lengths. -1 and errno (EINVAL where the filesystem has no
  // O_DIRECT) when there is none; the disk tier then stays buffered. The
  // default has none (EOPNOTSUPP), so an environment written before this
  // call existed keeps working unchanged.
  virtual int reopen_direct(int fd) {
    (void)fd;
    errno = EOPNOTSUPP;
    return -1;
  }

  // The process-wide default environment backed by POSIX calls.
  static std::shared_ptr<IoEnv> posix();

 private:
  ssize_t each_range(int fd, const struct iovec* iov, int count, off_t offset, bool write) {
    ssize_t total = 0;
    for (int i = 0; i < count; ++i) {
      const ssize_t r = write ? pwrite(fd, iov[i].iov_base, iov[i].iov_len, offset + total)
                              : pread(fd, iov[i].iov_base, iov[i].iov_len, offset + total);
      if (r < 0) return total > 0 ? total : -1;
      total += r;
      if (static_cast<std::size_t>(r) < iov[i].iov_len) break;
    }
    return total;
  }
};

// Forwards every call to `target`; derive from it and override only what a
// test needs to change.
class IoEnvWrapper : public IoEnv {
 public:
  explicit IoEnvWrapper(std::shared_ptr<IoEnv> target) : target_(std::move(target)) {}
  std::string make_private_dir(const std::string& parent) override {
    return target_->make_private_dir(parent);
  }
  int remove_dir(const std::string& path) override { return target_->remove_dir(path); }
  int open_unlinked_file(const std::string& dir) override { return target_->open_unlinked_file(dir); }
  int close(int fd) override { return target_->close(fd); }
  ssize_t pwrite(int fd, const void* data, std::size_t n, off_t offset) override {
    return target_->pwrite(fd, data, n, offset);
  }
  ssize_t pread(int fd, void* data, std::size_t n, off_t offset) override {
    return target_->pread(fd, data, n, offset);
  }
  int ftruncate(int fd, off_t length) override { return target_->ftruncate(fd, length); }
  int reopen_direct(int fd) override { return target_->reopen_direct(fd); }

  IoEnv& target() { return *target_; }

 private:
  std::shared_ptr<IoEnv> target_;
};

}  // namespace spillway
