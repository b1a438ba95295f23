// fuzz/memory_env.hpp — an IoEnv whose one "spill file" is a byte vector in
// memory, so a fuzz target can hand the disk tier's decoder any bytes at all
// (and a seed generator can keep what the encoder wrote).
#pragma once

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "spillway/io_env.hpp"

namespace spillway::fuzz {

class MemoryEnv final : public IoEnv {
 public:
  std::vector<unsigned char> file;

  std::string make_private_dir(const std::string&) override { return "/memory"; }
  int remove_dir(const std::string&) override { return 0; }
  int open_unlinked_file(const std::string&) override { return 3; }
  int close(int) override { return 0; }
  ssize_t pwrite(int, const void* data, std::size_t n, off_t offset) override {
    std::lock_guard lk(mu_);
    const auto end = static_cast<std::size_t>(offset) + n;
    if (file.size() < end) file.resize(end);
    std::memcpy(file.data() + offset, data, n);
    return static_cast<ssize_t>(n);
  }
  ssize_t pread(int, void* data, std::size_t n, off_t offset) override {
    std::lock_guard lk(mu_);
    const auto off = static_cast<std::size_t>(offset);
    if (off >= file.size()) return 0;  // end of file
    const std::size_t k = std::min(n, file.size() - off);
    std::memcpy(data, file.data() + off, k);
    return static_cast<ssize_t>(k);
  }
  int ftruncate(int, off_t length) override {
    std::lock_guard lk(mu_);
    if (length < 0) {
      errno = EINVAL;
      return -1;
    }
    file.resize(static_cast<std::size_t>(length));
    return 0;
  }

 private:
  std::mutex mu_;
};

}  // namespace spillway::fuzz
