// tools/plot.cpp — see plot.hpp.
#include "plot.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace spillway::tools {

std::string gnuplot_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += "''";  // gnuplot doubles a quote inside '...'
    else out += c;
  }
  return out + "'";
}

bool run_gnuplot(const std::string& script, std::string* why) {
  // The script path goes through the shell: quote it for sh.
  std::string quoted = "'";
  for (char c : script) {
    if (c == '\'') quoted += "'\\''";
    else quoted += c;
  }
  quoted += "'";
  const std::string cmd = "gnuplot " + quoted + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *why = std::string("could not start gnuplot: ") + std::strerror(errno);
    return false;
  }
  std::string output;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr) output += buf;
  const int status = ::pclose(p);
  if (status != 0) {
    *why = "gnuplot failed (is it installed? scripts/setup.sh installs gnuplot-nox): " + output;
    return false;
  }
  return true;
}

}  // namespace spillway::tools
