// spillway/tier.hpp — the three storage tiers and the two pin access modes.
//
// A buffer's bytes live on one of three tiers, fastest first. Lower numbers
// are faster; eviction moves bytes to a higher number ("down"), a pin on a
// faster tier moves them back "up". These values are part of the public
// contract and never change meaning.
#pragma once

#include <cstdint>
#include <string_view>

namespace spillway {

enum class Tier : std::uint8_t { Device = 0, Host = 1, Disk = 2 };
inline constexpr int kTierCount = 3;

// How a Pin will use the bytes. A Read pin keeps clean copies on slower
// tiers (so re-evicting the buffer writes nothing); a ReadWrite pin
// invalidates them, because the bytes may change while it lives.
enum class Access : std::uint8_t { Read, ReadWrite };

constexpr std::string_view tier_name(Tier t) noexcept {
  switch (t) {
    case Tier::Device: return "device";
    case Tier::Host: return "host";
    case Tier::Disk: return "disk";
  }
  return "unknown";
}

constexpr int tier_index(Tier t) noexcept { return static_cast<int>(t); }

}  // namespace spillway
