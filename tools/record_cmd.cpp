// tools/record_cmd.cpp — `spillway record [--out PATH] -- CMD ARGS...`.
//
// The program runs as a child with SPILLWAY_RECORD=<absolute PATH> (and,
// with --deterministic, SPILLWAY_DETERMINISTIC=1); its first recording pool
// writes PATH, later ones PATH.1, PATH.2, ... (the library numbers them). This process waits for it, ignoring SIGINT and
// SIGQUIT meanwhile as system() does (the child gets them from the
// terminal and ends; the summary still comes), then decodes each log.
#include "record_cmd.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "spillway/options.hpp"
#include "spillway/stats.hpp"
#include "src/record/log_reader.hpp"

namespace spillway::tools {

CLI::App* add_record_command(CLI::App& app, RecordArgs& args) {
  auto* cmd = app.add_subcommand(
      "record", "Run a program with SPILLWAY_RECORD set and summarise the access log its pools write");
  cmd->add_option("--out", args.out,
                   "the log's path (a second pool of the program writes PATH.1, and so on)")
      ->capture_default_str();
  cmd->add_flag("--deterministic", args.deterministic,
                "run every move of the program's pools on the calling thread (SPILLWAY_DETERMINISTIC=1), so "
                "that a single-threaded program's log replays to exactly its bytes moved; slower (no overlap)");
  cmd->add_option("command", args.command, "the program and its arguments, after --")->required();
  cmd->footer("Example: spillway record --out run.swlog -- python train.py --epochs 3");
  return cmd;
}

std::string summarize_access_log(const record::AccessLog& log, std::uint64_t file_bytes) {
  std::map<record::EventKind, std::uint64_t> kinds;
  std::set<std::uint32_t> threads;
  std::set<std::uint64_t> buffers;
  std::uint64_t allocated = 0;
  for (const record::Event& e : log.events) {
    ++kinds[e.kind];
    threads.insert(e.thread);
    if (e.kind == record::EventKind::Allocate) {
      buffers.insert(e.buffer);
      allocated += e.value;
    }
  }
  std::ostringstream out;
  const double seconds = log.events.empty() ? 0.0 : static_cast<double>(log.events.back().time_ns) / 1e9;
  out << "  program   " << (log.program.empty() ? "?" : log.program) << " (" << log.options.device_backend
      << " device " << format_bytes(log.options.device_bytes) << ", host " << format_bytes(log.options.host_bytes)
      << ", disk " << (log.options.disk_enabled ? format_bytes(log.options.disk_bytes) : "off")
      << (log.options.deterministic_moves ? ", deterministic moves" : "") << ")\n";
  out << "  events    " << log.events.size() << " over " << seconds << " s:";
  for (const auto& [kind, n] : kinds) out << ' ' << n << ' ' << record::to_string(kind);
  out << '\n';
  out << "  threads   " << threads.size() << '\n';
  out << "  buffers   " << buffers.size() << " allocated, " << format_bytes(allocated) << " in all\n";
  if (!log.markers.empty()) {
    out << "  markers  ";
    for (const std::string& m : log.markers) out << " '" << m << "'";
    out << '\n';
  }
  out << "  file      " << format_bytes(file_bytes);
  if (!log.events.empty()) {
    out << " (" << static_cast<double>(file_bytes) / static_cast<double>(log.events.size()) << " bytes per event)";
  }
  out << '\n';
  if (!log.totals) {
    out << "  footer    none: the program ended before its pool was destroyed (the log holds what was written)\n";
  } else {
    out << "  moved    ";
    bool any = false;
    for (int from = 0; from < kTierCount; ++from) {
      for (int to = 0; to < kTierCount; ++to) {
        if (log.totals->moves[from][to] == 0) continue;
        any = true;
        out << ' ' << tier_name(static_cast<Tier>(from)) << "->" << tier_name(static_cast<Tier>(to)) << ' '
            << log.totals->moves[from][to] << " (" << format_bytes(log.totals->moved_bytes[from][to]) << ")";
      }
    }
    out << (any ? "\n" : " nothing\n");
    if (log.totals->dropped > 0 || !log.totals->stop_reason.empty()) {
      out << "  STOPPED   " << log.totals->stop_reason << "; " << log.totals->dropped
          << " events were not written\n";
    }
  }
  return out.str();
}

int run_record_command(const RecordArgs& args) {
  const std::string path = std::filesystem::absolute(args.out).string();
  // A log left by an earlier run must not pass for this run's.
  std::error_code ec;
  std::filesystem::remove(path, ec);
  for (int i = 1; std::filesystem::remove(path + "." + std::to_string(i), ec); ++i) {
  }
  std::vector<char*> argv;
  for (const std::string& a : args.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  struct sigaction ignore {}, old_int {}, old_quit {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old_int);
  ::sigaction(SIGQUIT, &ignore, &old_quit);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    throw std::runtime_error(std::string("spillway record: fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    ::setenv("SPILLWAY_RECORD", path.c_str(), 1);
    if (args.deterministic) ::setenv("SPILLWAY_DETERMINISTIC", "1", 1);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "spillway record: cannot run '%s': %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      const int err = errno;
      ::sigaction(SIGINT, &old_int, nullptr);
      ::sigaction(SIGQUIT, &old_quit, nullptr);
      throw std::runtime_error(std::string("spillway record: waitpid: ") + std::strerror(err));
    }
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGQUIT, &old_quit, nullptr);
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;

  std::fflush(stdout);
  bool any = false;
  for (int i = 0;; ++i) {
    const std::string p = i == 0 ? path : path + "." + std::to_string(i);
    if (!std::filesystem::exists(p)) break;
    any = true;
    std::printf("\nspillway record: %s\n", p.c_str());
    try {
      const record::AccessLog log = record::read_access_log(p);
      std::printf("%s", summarize_access_log(log, std::filesystem::file_size(p)).c_str());
    } catch (const std::exception& e) {
      std::printf("  cannot be read: %s\n", e.what());
    }
  }
  if (!any) {
    std::printf("\nspillway record: no access log at %s: '%s' made no spillway Pool (or it was built without "
                "recording); exit status %d\n",
                path.c_str(), args.command[0].c_str(), rc);
  }
  std::fflush(stdout);
  return rc;
}

}  // namespace spillway::tools
