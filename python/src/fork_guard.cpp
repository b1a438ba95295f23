// python/src/fork_guard.cpp — knowing, cheaply, which process we are in.
//
// glibc no longer caches getpid(), so asking on every pin would be a system
// call. The pid is read once at import and again in every forked child, by a
// pthread_atfork handler that runs before the child returns from fork() — for
// os.fork(), multiprocessing's "fork" start method, and forks made from C.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

#include "handles.hpp"

namespace spillway::python {

namespace {

std::atomic<pid_t> g_pid{0};

void refresh_pid() noexcept { g_pid.store(::getpid(), std::memory_order_relaxed); }

}  // namespace

pid_t current_pid() noexcept { return g_pid.load(std::memory_order_relaxed); }

void install_fork_handler() {
  refresh_pid();
  if (const int err = ::pthread_atfork(nullptr, nullptr, &refresh_pid); err != 0) {
    throw std::system_error(err, std::generic_category(), "spillway: pthread_atfork");
  }
}

}  // namespace spillway::python
