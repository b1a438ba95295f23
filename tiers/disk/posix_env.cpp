// tiers/disk/posix_env.cpp — IoEnv::posix(): the disk tier's seam onto the
// operating system. Files are created without a name (O_TMPFILE) where the
// filesystem supports it, else created exclusively and unlinked at once.
#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>

#include "spillway/io_env.hpp"

namespace spillway {

namespace {

// Repeats a system call interrupted by a signal.
template <class Call>
auto retry(Call call) {
  decltype(call()) r;
  do {
    r = call();
  } while (r < 0 && errno == EINTR);
  return r;
}

// One io_uring per thread that asks for one (the disk tier's IO workers),
// created on first use; `usable` stays false where the kernel refuses rings
// (seccomp filters in containers, kernel.io_uring_disabled), and the caller
// then uses plain system calls.
struct ThreadRing {
  io_uring ring{};
  bool usable = false;
  bool busy = false;  // a write is in flight on it
  ThreadRing() { usable = ::io_uring_queue_init(4, &ring, 0) == 0; }
  ~ThreadRing() {
    if (usable) ::io_uring_queue_exit(&ring);
  }
  ThreadRing(const ThreadRing&) = delete;
  ThreadRing& operator=(const ThreadRing&) = delete;
};

ThreadRing& thread_ring() {
  thread_local ThreadRing r;
  return r;
}

class PosixEnv final : public IoEnv {
 public:
  std::string make_private_dir(const std::string& parent) override {
    std::string tmpl = parent;
    while (tmpl.size() > 1 && tmpl.back() == '/') tmpl.pop_back();
    tmpl += "/spillway-XXXXXX";
    // mkdtemp creates a new directory (mode 0700) and fails rather than
    // reuse or follow anything already there.
    if (::mkdtemp(tmpl.data()) == nullptr) return {};
    // A restrictive umask may have taken bits off 0700; put them back. The
    // entry was created by us an instant ago; lstat checks it is still our
    // directory (not a link planted in its place) before the chmod.
    struct stat st {};
    errno = 0;
    if (::lstat(tmpl.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
        ((st.st_mode & 07777) != 0700 && ::chmod(tmpl.c_str(), 0700) != 0)) {
      const int err = errno != 0 ? errno : EEXIST;  // EEXIST: not our directory
      ::rmdir(tmpl.c_str());
      errno = err;
      return {};
    }
    return tmpl;
  }

  int remove_dir(const std::string& path) override { return ::rmdir(path.c_str()); }

  int open_unlinked_file(const std::string& dir) override {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) return -1;
    int fd = ::openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || errno == ENOENT)) {
      // No O_TMPFILE here: create a fresh name exclusively, then unlink it.
      std::random_device rd;
      for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        const std::string name = "spill-" + std::to_string(rd()) + std::to_string(rd());
        fd = ::openat(dfd, name.c_str(), O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) {
          if (::unlinkat(dfd, name.c_str(), 0) != 0) {
            const int err = errno;
            ::close(fd);
            ::close(dfd);
            errno = err;
            return -1;
          }
        } else if (errno != EEXIST) {
          break;
        }
      }
    }
    const int err = errno;
    ::close(dfd);
    errno = err;
    return fd;
  }

  int close(int fd) override { return ::close(fd); }

  ssize_t pwrite(int fd, const void* data, std::size_t n, off_t offset) override {
    return retry([&] { return ::pwrite(fd, data, n, offset); });
  }

  ssize_t pread(int fd, void* data, std::size_t n, off_t offset) override {
    return retry([&] { return ::pread(fd, data, n, offset); });
  }

  ssize_t preadv(int fd, const struct iovec* iov, int count, off_t offset) override {
    return retry([&] { return ::preadv(fd, iov, count, offset); });
  }

  ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t offset) override {
    return retry([&] { return ::pwritev(fd, iov, count, offset); });
  }

  ssize_t pwritev_during(int fd, const struct iovec* iov, int count, off_t offset,
                         const std::function<void()>& meanwhile) override {
    ThreadRing& r = thread_ring();
    io_uring_sqe* sqe = r.usable && !r.busy ? ::io_uring_get_sqe(&r.ring) : nullptr;
    if (sqe == nullptr) {
      errno = ENOSYS;
      return -1;
    }
    ::io_uring_prep_writev(sqe, fd, iov, static_cast<unsigned>(count), static_cast<__u64>(offset));
    if (::io_uring_submit(&r.ring) != 1) {
      // Not submitted (the kernel refused the ring's call): the entry may
      // still sit in the queue, so this ring is not used again.
      r.usable = false;
      errno = ENOSYS;
      return -1;
    }
    r.busy = true;
    std::exception_ptr error;
    try {
      meanwhile();
    } catch (...) {
      error = std::current_exception();
    }
    // The memory being written belongs to the caller until the write ends:
    // wait for it whatever meanwhile() did.
    io_uring_cqe* cqe = nullptr;
    int w;
    do {
      w = ::io_uring_wait_cqe(&r.ring, &cqe);
    } while (w == -EINTR);
    int res = w < 0 ? w : cqe->res;
    if (w == 0) ::io_uring_cqe_seen(&r.ring, cqe);
    else r.usable = false;  // no completion to be had: never trust this ring again
    r.busy = false;
    if (error) std::rethrow_exception(error);
    if (res == -EINTR || res == -EAGAIN) {
      return pwritev(fd, iov, count, offset);  // the same bytes once more, as a system call
    }
    if (res < 0) {
      errno = -res;
      return -1;
    }
    return res;
  }

  int reopen_direct(int fd) override {
    // Through /proc: the spill file has no name to open it by. The new
    // descriptor must be the same file (not something that took the number's
    // place), which fstat checks.
    struct stat before {};
    if (::fstat(fd, &before) != 0) return -1;
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const int dfd = ::open(path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
    if (dfd < 0) return -1;
    struct stat after {};
    if (::fstat(dfd, &after) != 0 || after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
      ::close(dfd);
      errno = ESTALE;
      return -1;
    }
    return dfd;
  }

  int ftruncate(int fd, off_t length) override {
    return retry([&] { return ::ftruncate(fd, length); });
  }
};

}  // namespace

std::shared_ptr<IoEnv> IoEnv::posix() {
  static const std::shared_ptr<IoEnv> env = std::make_shared<PosixEnv>();
  return env;
}

}  // namespace spillway
