// src/core/buffer_record.hpp — one buffer's record: where its bytes are, and
// the atomic state word that lets a pin of a resident buffer skip the pool's
// lock.
//
// Note [Residency state machine]
// ------------------------------
// A buffer has one *primary* copy (the authoritative bytes) on one tier and
// optional *clean copies* on slower tiers. Every change of where the bytes
// are — a spill, a fetch, a clean eviction, a free — runs on the *slow path*
// under PoolCore::mu_. The pin of a buffer whose primary is already on the
// asked tier, and its unpin, run on the *fast path*: they touch only the
// record's `state` word (one compare-and-swap each) and the calling thread's
// own counters (ThreadShard), never the pool's lock or a line that every
// buffer shares.
//
// The state word (64 bits):
//   bits 0-31   pins       live pins (fast and slow alike)
//   bits 32-33  tier       the primary tier while the record is settled
//                          (kNoTier for a zero-byte buffer)
//   kSlow       the fast path is refused: the record is claimed by the slow
//               path (a move or a clean eviction is changing its primary),
//               or freed while pinned, or a stream-ordered copy into it may
//               still run, or it is zero bytes long, or the pool is closed
//   kCleanBelow a clean copy exists below the primary: a ReadWrite pin must
//               drop it, so it takes the slow path (a Read pin need not)
//   kFrozen     check_invariants() holds every record still for a moment
//   kGarbage    freed on the fast path; the record waits in its freeing
//               thread's shard until a batch unlinks it (PoolCore::collect)
//   kBiased     read-shared: Read pins may count in their thread's reader
//               slot instead of in pins (Note [Read-shared buffers])
//   kBiasPin    pins includes one pin held for the reader slots
//
// The two rules that make the fast path safe:
//   1. A fast pin is one atomic increment of the word, judged by the value
//      it returns: the pin holds only if that value had tier = T and
//      neither kSlow nor kFrozen set; otherwise the pin takes its increment
//      back at once and goes the slow path. Only a pin that holds reads
//      block[T], which is stable: see 2. (The policy marks of a use are
//      set afterwards in `marks`, with a plain store: see below.)
//   2. The slow path changes a record's primary block only after *claiming*
//      the record: one CAS from a word with pins = 0 and kSlow clear to one
//      with kSlow set. Pin and claim meet on the same word, so exactly one
//      wins: a claim after the increment sees pins = 1 and fails; an
//      increment after the claim returns a word with kSlow and is taken
//      back. An eviction never takes a pinned buffer, and no pin is ever
//      granted to a buffer being moved (the pin takes the slow path, finds
//      the record moving and waits). A claim ends with publish_state()
//      (PoolCore), which rewrites tier, kSlow and kCleanBelow from the
//      record's fields, keeping the pins and the other bits.
// A taken-back increment is a count of a pin that never was, for a few
// instructions: a claim in that moment fails and is retried, a slow-path
// grant or unpin may see it, and check_invariants() reads states only when
// none is in progress (see PoolCore::take_back). So that pinned bytes still
// add up, every change of the word books what it changed, judged by the
// word it saw (state::pinned_change): the count and its take-back both, and
// a tier change made under a count. Looking before counting, and trusting
// the look, is the bug the interleaving test (tests/concurrency_test.cpp)
// must catch.
// Everything else in a record that can change (primary, blocks, extent,
// flags, list hooks) is guarded by PoolCore::mu_; a pending record (born
// on the fast path and not yet in the pool's lists) is guarded by its home
// shard's lock instead, until PoolCore::adopt() takes it into the lists.
//
// Unpins: a fast unpin is one atomic decrement, judged the same way (a
// word with kSlow or kFrozen takes the decrement back and goes the slow
// path: a record freed while pinned has kSlow set, so its last unpin frees
// it under the lock). An unpin that ends the last pin wakes the threads
// counted in PoolCore::waiters_ (waiting for room, or for that pin).
//
// Policy marks (`marks`, a byte beside the word on its cache line):
//   mark::kRef    pinned since the eviction scan last passed (CLOCK)
//   mark::kFresh  allocated, and neither pinned nor hinted since (Lookahead)
// They are hints to a policy, not part of what makes a pin safe, so they are
// written with plain (relaxed) stores, and only when they change: a pin
// never pays a second locked instruction for them. A store racing the
// scan's clear (or a hint's) can lose one mark, which only changes the
// order in which a policy picks among unpinned buffers. The first pin of a
// new buffer thus costs one read-modify-write (its count), like any other.
//
// Counters: the pin count, and the pinned bytes a change books, go to the
// calling thread's ThreadShard (the slow path's to the pool's counters). Its `seq` is odd while a
// fast pin or unpin is between its count and its counter update, which lets
// check_invariants() wait for those few instructions to end after freezing
// the records (see ThreadShard).//
// Note [Read-shared buffers]
// --------------------------
// Threads that pin one buffer for reading at once would move its state
// word's line between them on every pin and unpin. So a buffer that a Read
// pin finds already pinned becomes *read-shared*: one CAS adds a pin to
// its word on behalf of every reader and sets kBiased | kBiasPin. From then
// on a fast Read pin counts itself in a *reader slot* of its own thread's
// shard (ThreadShard::readers: record pointer + count, on the thread's own
// line) and only reads the word; its unpin decrements that slot (from any
// thread). The word's extra pin keeps the buffer unclaimable, so the
// readers need not be in its count.
//
// Revocation (PoolCore::revoke_sharing, under mu_): a slow path that needs
// the buffer's pins (a claim, a free, an eviction, a wait) clears kBiased,
// waits for every thread's seq window that was open (a grace period of a
// few instructions), and scans every shard's slots for the record. None
// counted: it gives the reader pin back (clears kBiasPin, one unpin) and the
// buffer is as if never shared. Some: the buffer stays pinned; kBiasPin
// without kBiased (orphaned()) tells the remaining readers, and the last of
// them gives the pin back under mu_.
// Why no reader is lost (a reader's steps run inside its seq window, whose
// opening is a seq_cst store): a pin counts, then loads the word, and is
// granted only if kBiased is still set; an unpin loads the word first (if
// orphaned it keeps its count and finishes under mu_), then decrements and
// loads again (if orphaned now, it takes the count back and does the
// same). A revoker's grace period either waits out such a window, or the
// window began after kBiased was cleared and saw it. So the scan sees every
// count that a granted pin or an unfinished unpin holds, a pin is never
// granted on a word whose reader pin was given back, and a reader never
// touches a record after the scan that let it be freed.
// Booking: the word's reader pin is left out of pinned bytes (held()); a
// buffer read only through slots is counted from the slots, so a shared
// buffer that nobody reads right now is not pinned, and the eviction scan,
// OutOfMemory and waits for pins revoke such a buffer's sharing first.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "spillway/tier.hpp"
#include "tiers/disk/spill_store.hpp"

namespace spillway::detail {

class Fence;
class PoolCore;
struct BufferRecord;
struct ThreadShard;

namespace state {
inline constexpr std::uint64_t kPinMask = 0xFFFF'FFFFull;
inline constexpr int kTierShift = 32;
inline constexpr std::uint64_t kTierMask = std::uint64_t{3} << kTierShift;
inline constexpr std::uint64_t kNoTier = 3;
inline constexpr std::uint64_t kSlow = std::uint64_t{1} << 34;
inline constexpr std::uint64_t kCleanBelow = std::uint64_t{1} << 35;
inline constexpr std::uint64_t kFrozen = std::uint64_t{1} << 36;
inline constexpr std::uint64_t kGarbage = std::uint64_t{1} << 39;
inline constexpr std::uint64_t kBiased = std::uint64_t{1} << 40;
inline constexpr std::uint64_t kBiasPin = std::uint64_t{1} << 41;

constexpr std::uint32_t pins(std::uint64_t s) { return static_cast<std::uint32_t>(s & kPinMask); }
// The pins of callers: pins(s) less the one a read-shared word holds for
// its reader slots (Note [Read-shared buffers]).
constexpr std::uint32_t held(std::uint64_t s) { return pins(s) - ((s & kBiasPin) != 0 ? 1u : 0u); }
// A read-shared word whose sharing was revoked while readers still counted
// in their slots: the last of them gives the word's reader pin back.
constexpr bool orphaned(std::uint64_t s) { return (s & (kBiased | kBiasPin)) == kBiasPin; }
constexpr std::uint64_t tier_bits(int tier) { return static_cast<std::uint64_t>(tier) << kTierShift; }
constexpr int tier_of(std::uint64_t s) { return static_cast<int>((s & kTierMask) >> kTierShift); }

// Pinned-bytes bookkeeping. Every read-modify-write that changes a word's
// held pins or tier books the change it made, judged by the word it saw and the
// word it left: the buffer's footprint leaves the tier named by `before` if
// that word had pins, and joins the tier named by `after` if that one has.
// The writes to one word are totally ordered, each seeing the word the one
// before it left, so the bookings of all of them add up to exactly the
// pinned footprint of every memory tier — counts taken back (Note above)
// and tier changes under a count included. Disk and "no tier" (zero bytes)
// are left out on both sides alike. The reader pin of a read-shared word
// is not counted (held()): a buffer pinned only by reader slots is counted
// from the slots (PoolCore::pinned_bytes), so an idle read-shared buffer is
// not pinned.
struct PinnedChange {
  int leaves = -1;  // the memory tier the footprint leaves, or -1
  int joins = -1;   // the memory tier it joins, or -1
};
constexpr PinnedChange pinned_change(std::uint64_t before, std::uint64_t after) {
  const int tb = tier_of(before), ta = tier_of(after);
  const bool was = held(before) > 0 && tb < 2, is = held(after) > 0 && ta < 2;
  if (was && is && tb == ta) return {};
  return {was ? tb : -1, is ? ta : -1};
}
}  // namespace state

// A record's policy marks (Note [Residency state machine]).
namespace mark {
inline constexpr std::uint8_t kRef = 1;
inline constexpr std::uint8_t kFresh = 2;
}  // namespace mark

// Intrusive doubly-linked lists of records, one hook per list kind, so that
// linking and unlinking never allocates. A record is in at most one ring
// (its primary tier's), in the clean list of each tier that holds a clean
// copy, and in `all` (the pool's registry; a home shard's pending list uses
// the same hook before the record is adopted).
enum ListKind : int {
  kDeviceRing = 0,
  kHostRing = 1,
  kCleanHostList = 2,
  kCleanDiskList = 3,
  kAllList = 4,
  kListKinds = 5
};

struct ListHook {
  BufferRecord* prev = nullptr;
  BufferRecord* next = nullptr;
  bool linked = false;
};

class RecordList {
 public:
  explicit RecordList(ListKind kind) : kind_(kind) {}
  RecordList(const RecordList&) = delete;
  RecordList& operator=(const RecordList&) = delete;
  void push_back(BufferRecord* r);
  void remove(BufferRecord* r);
  void move_to_back(BufferRecord* r) {
    remove(r);
    push_back(r);
  }
  bool contains(const BufferRecord* r) const;
  BufferRecord* front() const { return head_; }
  BufferRecord* next(const BufferRecord* r) const;
  bool empty() const { return head_ == nullptr; }
  std::size_t size() const { return size_; }

 private:
  ListHook& hook(BufferRecord* r) const;
  ListKind kind_;
  BufferRecord* head_ = nullptr;
  BufferRecord* tail_ = nullptr;
  std::size_t size_ = 0;
};

inline constexpr std::uint64_t kNoHint = ~std::uint64_t{0};

// Cache-line aligned, with the state word and its marks alone on the first line: threads
// pinning one buffer move that line between them once per pin or unpin,
// and everything a pin reads besides (the block address, the footprint)
// stays on lines they all keep a clean copy of.
struct alignas(64) BufferRecord {
  // ---- lock-free (see the note above) ----
  std::atomic<std::uint64_t> state{0};
  std::atomic<std::uint8_t> marks{0};  // mark::kRef, mark::kFresh
  // The block the live pins point at, stored by a pin that finds it
  // different: check_invariants() verifies that a pinned buffer's bytes
  // never moved.
  alignas(64) std::atomic<void*> pinned_block{nullptr};
  // For Lookahead: the executor step at which the buffer is next used.
  std::atomic<std::uint64_t> next_use{kNoHint};

  // ---- fixed at allocation ----
  std::uint64_t id = 0;
  std::size_t size = 0;
  std::size_t footprint = 0;  // bytes the buffer takes in a memory arena
  std::int8_t size_class = -1;  // of the thread caches (thread_shard.hpp), -1 when footprint is none
  std::string label;
  ThreadShard* home = nullptr;  // the shard whose pending list held it at birth (nullptr: born adopted)

  // ---- under PoolCore::mu_ (under home->lock while pending) ----
  Tier primary = Tier::Host;
  std::array<void*, 2> block{};  // Device, Host
  bool on_disk = false;
  bool disk_zero = false;  // disk copy is "all zeros", not yet written
  SpillExtent extent;
  bool claimed = false;  // the slow path is changing its primary (see try_claim)
  bool moving = false;   // a move is in flight (claimed until it commits)
  bool dead = false;     // the Buffer is gone; free when the move or last pin ends
  bool adopted = false;  // in the pool's lists (else in its home shard's pending list)
  // A stream-ordered copy into the device block that may still be running
  // (stream-aware pin). While it is, the record holds a pin (so nothing
  // moves or frees it), stays off the clean lists (the copy reads the host
  // copy) and keeps clean copies that a ReadWrite pin made stale.
  std::shared_ptr<Fence> copy_fence;
  bool stale_clean = false;  // drop the clean copies once copy_fence is done
  // The tier whose backed_bytes_ counts this record (its primary is there
  // with a clean copy below), or -1.
  std::int8_t backed_on = -1;
  // Freed while pinned after its Buffer went: the core stays alive until the
  // last unpin (a Pin holds a plain pointer to it).
  std::shared_ptr<PoolCore> keepalive;
  // The label's id in the current trace recorder (interned on first use).
  mutable std::uint32_t trace_label = 0;
  mutable std::uint64_t trace_label_generation = 0;
  std::array<ListHook, kListKinds> hooks{};
  // Under the freeing thread's shard lock: the next record in its garbage.
  BufferRecord* garbage_next = nullptr;

  // Makes a record that was freed while pending (born on the fast path,
  // never adopted) a fresh one again. Such a record never met the slow path
  // (every slow path adopts a record first), so only what the fast path
  // sets can differ from a new record's.
  void reuse() {
    state.store(0, std::memory_order_relaxed);
    marks.store(0, std::memory_order_relaxed);
    // pinned_block is left as it was: it is read only for a pinned record,
    // and a pin stores it when it differs (a reused record usually gets its
    // old block back from the thread cache: no store then).
    next_use.store(kNoHint, std::memory_order_relaxed);
    primary = Tier::Host;
    block = {};
    home = nullptr;
  }

  bool has_copy(Tier t) const { return t == Tier::Disk ? on_disk : block[tier_index(t)] != nullptr; }
  bool has_clean(Tier t) const { return t != primary && has_copy(t); }
  // A clean copy below the primary: evicting it writes nothing.
  bool clean_below() const { return has_clean(Tier::Host) || has_clean(Tier::Disk); }
  // seq_cst: a thread that waits for pins to end reads this after counting
  // itself in PoolCore::waiters_, and an unpin reads waiters_ after its count.
  std::uint32_t pins() const { return state::pins(state.load(std::memory_order_seq_cst)); }
  bool fresh() const { return (marks.load(std::memory_order_relaxed) & mark::kFresh) != 0; }
  // Sets kRef and clears kFresh (the marks of a use), storing only when
  // they change.
  void note_use() {
    if (marks.load(std::memory_order_relaxed) != mark::kRef) marks.store(mark::kRef, std::memory_order_relaxed);
  }
};

inline ListHook& RecordList::hook(BufferRecord* r) const { return r->hooks[kind_]; }
inline BufferRecord* RecordList::next(const BufferRecord* r) const { return r->hooks[kind_].next; }
inline bool RecordList::contains(const BufferRecord* r) const { return r->hooks[kind_].linked; }

inline void RecordList::push_back(BufferRecord* r) {
  ListHook& h = hook(r);
  if (h.linked) return;
  h.prev = tail_;
  h.next = nullptr;
  h.linked = true;
  if (tail_ != nullptr) hook(tail_).next = r;
  else head_ = r;
  tail_ = r;
  ++size_;
}

inline void RecordList::remove(BufferRecord* r) {
  ListHook& h = hook(r);
  if (!h.linked) return;
  if (h.prev != nullptr) hook(h.prev).next = h.next;
  else head_ = h.next;
  if (h.next != nullptr) hook(h.next).prev = h.prev;
  else tail_ = h.prev;
  h.linked = false;  // prev and next are read only while linked
  --size_;
}

}  // namespace spillway::detail
