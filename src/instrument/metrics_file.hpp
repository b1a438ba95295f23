// src/instrument/metrics_file.hpp — writes a pool's metrics, in the
// Prometheus text format, to a file for node_exporter's textfile collector.
//
// Every `interval` (and once more when the writer stops) the text from
// `render` goes to `<path>.tmp`, which is then renamed over `path`, so the
// collector never reads half a file. The first write happens in the
// constructor, which throws IoError when it fails (a wrong path is reported
// where the pool is built); later failures are counted and the first one is
// reported on stderr, without stopping the pool.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "src/core/sync.hpp"
#include <string>
#include <thread>

namespace spillway::instrument {

class MetricsFileWriter {
 public:
  MetricsFileWriter(std::string path, std::chrono::milliseconds interval,
                    std::function<std::string()> render);
  ~MetricsFileWriter();  // stops the thread after one last write
  MetricsFileWriter(const MetricsFileWriter&) = delete;
  MetricsFileWriter& operator=(const MetricsFileWriter&) = delete;

  std::uint64_t writes() const { return writes_.load(); }
  std::uint64_t failures() const { return failures_.load(); }

 private:
  void write_once();  // throws IoError
  void run();

  std::string path_;
  std::chrono::milliseconds interval_;
  std::function<std::string()> render_;
  detail::Mutex mu_;
  std::condition_variable cv_;
  bool stopping_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::thread thread_;
};

}  // namespace spillway::instrument
