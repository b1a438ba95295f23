// stress/pattern.hpp — the bytes a stress buffer must hold: a pattern
// derived from (buffer id, version), cheap to write and to check.
//
// Every word of the pattern depends on the buffer id, the version and the
// word's offset, so bytes from another buffer, from an older version of the
// same buffer, or shifted within it never match. A ReadWrite pin bumps the
// version and rewrites the pattern; the harness keeps the expected version.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace spillway::stress {

inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline std::uint64_t pattern_seed(std::uint64_t buffer_id, std::uint64_t version) {
  return mix64(buffer_id * 0x100000001b3ULL ^ (version + 0x51ed2701ULL));
}

inline void fill_pattern(void* p, std::size_t n, std::uint64_t buffer_id, std::uint64_t version) {
  auto* b = static_cast<unsigned char*>(p);
  const std::uint64_t seed = pattern_seed(buffer_id, version);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = mix64(seed + i);
    std::memcpy(b + i, &w, 8);
  }
  const std::uint64_t tail = mix64(seed + i);
  for (std::size_t j = 0; i < n; ++i, ++j) b[i] = static_cast<unsigned char>(tail >> (8 * j));
}

// The offset of the first byte that differs from the pattern, or -1.
inline long long find_mismatch(const void* p, std::size_t n, std::uint64_t buffer_id,
                               std::uint64_t version) {
  const auto* b = static_cast<const unsigned char*>(p);
  const std::uint64_t seed = pattern_seed(buffer_id, version);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = mix64(seed + i);
    if (std::memcmp(b + i, &w, 8) != 0) {
      for (std::size_t j = 0; j < 8; ++j) {
        if (b[i + j] != static_cast<unsigned char>(w >> (8 * j))) return static_cast<long long>(i + j);
      }
    }
  }
  const std::uint64_t tail = mix64(seed + i);
  for (std::size_t j = 0; i < n; ++i, ++j) {
    if (b[i] != static_cast<unsigned char>(tail >> (8 * j))) return static_cast<long long>(i);
  }
  return -1;
}

}  // namespace spillway::stress
