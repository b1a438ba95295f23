// src/record/log_writer.hpp — encoding a whole AccessLog in memory, in the
// same format a recording pool writes (docs/record-format.md). For tests,
// for tools that write a log they made (a trimmed or synthetic one), and as
// the reference the decoder is checked against.
#pragma once

#include <cstddef>
#include <vector>

#include "src/record/access_log.hpp"

namespace spillway::record {

// The log's events are written in the order given, in blocks of at most
// `events_per_block`; decoding gives back an equal AccessLog when the
// events' times never decrease (the decoder's merge order: per thread in
// file order, across threads by time, ties in file order). The markers go
// in one block before the events; the footer is written when
// log.totals is set (with totals->events as given, so a test can write a
// footer that disagrees).
std::vector<std::byte> encode_access_log(const AccessLog& log, std::size_t events_per_block = 4096);

}  // namespace spillway::record
