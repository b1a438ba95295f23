// src/instrument/metrics_file.cpp — see metrics_file.hpp.
#include "metrics_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "spillway/errors.hpp"

namespace spillway::instrument {

MetricsFileWriter::MetricsFileWriter(std::string path, std::chrono::milliseconds interval,
                                     std::function<std::string()> render)
    : path_(std::move(path)), interval_(interval), render_(std::move(render)) {
  write_once();
  periodic_ = std::make_unique<PeriodicTask>(interval_, "metrics file", [this] { write_once(); });
}

MetricsFileWriter::~MetricsFileWriter() {
  periodic_->stop();
  try {
    write_once();  // the final numbers
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spillway: metrics file: %s\n", e.what());
  }
}

void MetricsFileWriter::write_once() {
  const std::string text = render_();
  const std::string tmp = path_ + ".tmp";
  // O_NOFOLLOW: a symlink planted at the temporary name is not followed.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(errno, tmp, 0, "creating the metrics file");
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw IoError(err, tmp, done, "writing the metrics file");
    }
    done += static_cast<std::size_t>(w);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw IoError(err, tmp, 0, "closing the metrics file");
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw IoError(err, path_, 0, "renaming the metrics file into place");
  }
  ++writes_;
}

}  // namespace spillway::instrument
