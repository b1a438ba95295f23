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
#include <functional>
#include <memory>
#include <string>

#include "periodic.hpp"

namespace spillway::instrument {

class MetricsFileWriter {
 public:
  MetricsFileWriter(std::string path, std::chrono::milliseconds interval,
                    std::function<std::string()> render);
  ~MetricsFileWriter();  // stops the thread after one last write
  MetricsFileWriter(const MetricsFileWriter&) = delete;
  MetricsFileWriter& operator=(const MetricsFileWriter&) = delete;

  std::uint64_t writes() const { return writes_.load(); }
  std::uint64_t failures() const { return periodic_->failures(); }

 private:
  void write_once();  // throws IoError

  std::string path_;
  std::chrono::milliseconds interval_;
  std::function<std::string()> render_;
  std::atomic<std::uint64_t> writes_{0};
  std::unique_ptr<PeriodicTask> periodic_;  // calls write_once every interval_
};

}  // namespace spillway::instrument
