// tools/plot.hpp — pictures are drawn by gnuplot (Debian: gnuplot-nox): the
// tools write a data file and a gnuplot script beside the picture, so a
// reader can redraw or restyle it, and run the script through this.
#pragma once

#include <string>

namespace spillway::tools {

// Runs `gnuplot script`. False, with *why saying what went wrong (gnuplot
// missing, or its own error output), when no picture was drawn.
bool run_gnuplot(const std::string& script, std::string* why);

// Quotes `text` for a single-quoted gnuplot string.
std::string gnuplot_quote(const std::string& text);

}  // namespace spillway::tools
