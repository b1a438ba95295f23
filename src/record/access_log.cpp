// src/record/access_log.cpp — names of the access log's events.
#include "src/record/access_log.hpp"

namespace spillway::record {

const char* to_string(EventKind k) {
  switch (k) {
    case EventKind::Allocate: return "allocate";
    case EventKind::Free: return "free";
    case EventKind::Pin: return "pin";
    case EventKind::Unpin: return "unpin";
    case EventKind::Hint: return "hint";
    case EventKind::Prefetch: return "prefetch";
    case EventKind::Evict: return "evict";
    case EventKind::Marker: return "marker";
  }
  return "?";
}

}  // namespace spillway::record
