// src/core/pool.cpp — the public handles (Pool, Buffer, Pin) over PoolCore.
#include "spillway/pool.hpp"

#include <stdexcept>
#include <utility>

#include "pool_core.hpp"
#include "src/record/access_recorder.hpp"

namespace spillway {

namespace {
[[noreturn]] void empty_handle(const char* what) {
  throw std::logic_error(std::string("spillway: ") + what + " on an empty Buffer");
}

// Access log hooks: every public call that the log keeps pays one load and
// one branch when the pool does not record. A call is logged once it has
// taken effect (a pin when granted, an allocation when made) and a release
// before it takes effect (unpin, free), so that a thread the handle moves to
// logs its use after the first thread's in time.
using record::EventKind;
// Out of line and cold: the pin path keeps only the load and the branch.
[[gnu::noinline, gnu::cold]] void log_event(record::AccessRecorder* rec, EventKind kind, std::uint64_t buffer,
                                            Tier tier, Access access, std::uint64_t value) {
  rec->record(kind, buffer, tier, access, value);
}
inline void log_access(detail::PoolCore* core, EventKind kind, std::uint64_t buffer, Tier tier, Access access,
                       std::uint64_t value = 0) {
  if (record::AccessRecorder* rec = core->access_recorder()) [[unlikely]] log_event(rec, kind, buffer, tier, access, value);
}
}  // namespace

// ---- Pin -----------------------------------------------------------------------

Pin::Pin(detail::PoolCore* core, detail::BufferRecord* record, void* data, std::size_t size, Tier tier,
         Access access, detail::ReaderSlot* reader) noexcept
    : core_(core), record_(record), data_(data), size_(size), tier_(tier), access_(access), reader_(reader) {}

Pin::Pin(Pin&& other) noexcept
    : core_(std::exchange(other.core_, nullptr)),
      record_(std::exchange(other.record_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      tier_(other.tier_),
      access_(other.access_),
      reader_(std::exchange(other.reader_, nullptr)) {}

Pin& Pin::operator=(Pin&& other) noexcept {
  if (this != &other) {
    release();
    core_ = std::exchange(other.core_, nullptr);
    record_ = std::exchange(other.record_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    tier_ = other.tier_;
    access_ = other.access_;
    reader_ = std::exchange(other.reader_, nullptr);
  }
  return *this;
}

Pin::~Pin() { release(); }

void Pin::release() noexcept {
  if (record_ != nullptr) {
    log_access(core_, EventKind::Unpin, record_->id, tier_, access_);
    if (reader_ != nullptr) {
      core_->unpin_reader(record_, std::exchange(reader_, nullptr));
    } else {
      core_->unpin(record_);
    }
    record_ = nullptr;
    data_ = nullptr;
    size_ = 0;
    core_ = nullptr;
  }
}

void Pin::release(Stream stream) {
  if (record_ == nullptr) return;
  log_access(core_, EventKind::Unpin, record_->id, tier_, access_);
  detail::PoolCore* core = std::exchange(core_, nullptr);
  detail::BufferRecord* record = std::exchange(record_, nullptr);
  data_ = nullptr;
  size_ = 0;
  // A reader-slot pin becomes a pin in the buffer's count, which the
  // stream's fence can end later.
  if (detail::ReaderSlot* reader = std::exchange(reader_, nullptr)) core->reader_to_count(record, reader);
  core->unpin_after(record, tier_, stream);
}

// ---- Buffer --------------------------------------------------------------------

Buffer::Buffer(detail::PoolCore* core, detail::BufferRecord* record, std::size_t size,
               std::uint64_t id) noexcept
    : core_(core), record_(record), size_(size), id_(id) {}

Buffer::Buffer(Buffer&& other) noexcept
    : core_(std::exchange(other.core_, nullptr)),
      record_(std::exchange(other.record_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      id_(std::exchange(other.id_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    core_ = std::exchange(other.core_, nullptr);
    record_ = std::exchange(other.record_, nullptr);
    size_ = std::exchange(other.size_, 0);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

Buffer::~Buffer() { reset(); }

void Buffer::reset() noexcept {
  if (record_ != nullptr) {
    log_access(core_, EventKind::Free, id_, Tier::Host, Access::Read);
    detail::PoolCore* core = std::exchange(core_, nullptr);
    detail::BufferRecord* record = std::exchange(record_, nullptr);
    core->free(record);  // may end the core (the Pool gone, this the last Buffer)
  }
}

std::string_view Buffer::label() const {
  if (record_ == nullptr) return {};
  return record_->label;
}

Tier Buffer::tier() const {
  if (record_ == nullptr) empty_handle("tier()");
  return core_->tier_of(record_);
}

unsigned Buffer::clean_copies() const {
  if (record_ == nullptr) empty_handle("clean_copies()");
  return core_->clean_copies(record_);
}

Pin Buffer::pin(Tier where, Access access) {
  if (record_ == nullptr) empty_handle("pin()");
  detail::ReaderSlot* reader = nullptr;
  void* data = core_->pin(record_, where, access, &reader);
  log_access(core_, EventKind::Pin, id_, where, access);
  return Pin(core_, record_, data, size_, where, access, reader);
}

Pin Buffer::try_pin(Tier where, Access access) {
  if (record_ == nullptr) empty_handle("try_pin()");
  detail::ReaderSlot* reader = nullptr;
  void* data = nullptr;
  if (!core_->try_pin(record_, where, access, &data, &reader)) return Pin();
  log_access(core_, EventKind::Pin, id_, where, access);
  return Pin(core_, record_, data, size_, where, access, reader);
}

Pin Buffer::pin(Tier where, Access access, Stream stream) {
  if (record_ == nullptr) empty_handle("pin()");
  void* data = core_->pin(record_, where, access, stream);
  log_access(core_, EventKind::Pin, id_, where, access);
  return Pin(core_, record_, data, size_, where, access, nullptr);
}

void Buffer::prefetch(Tier where) {
  if (record_ == nullptr) empty_handle("prefetch()");
  core_->prefetch(record_, where);
  log_access(core_, EventKind::Prefetch, id_, where, Access::Read);
}

void Buffer::hint_next_use(std::uint64_t step) {
  if (record_ == nullptr) empty_handle("hint_next_use()");
  core_->hint_next_use(record_, step);
  log_access(core_, EventKind::Hint, id_, Tier::Host, Access::Read, step);
}

void Buffer::evict(Tier where) {
  if (record_ == nullptr) empty_handle("evict()");
  core_->evict(record_, where);
  log_access(core_, EventKind::Evict, id_, where, Access::Read);
}

// ---- Pool ----------------------------------------------------------------------

Pool::Pool(PoolOptions options) : core_(std::make_shared<detail::PoolCore>(std::move(options))) {}

Pool::~Pool() {
  if (core_) detail::PoolCore::release_pool(std::move(core_));
}

Buffer Pool::allocate(std::size_t bytes, Tier preferred, std::string_view label) {
  detail::BufferRecord* r = core_->allocate(bytes, preferred, label);
  log_access(core_.get(), EventKind::Allocate, r->id, preferred, Access::Read, bytes);
  return Buffer(core_.get(), r, bytes, r->id);
}

PoolStats Pool::stats() const {
  core_->poll();  // pins whose stream work has finished are released first
  return core_->stats();
}
void Pool::set_trace(std::shared_ptr<TraceSink> sink) { core_->set_trace(std::move(sink)); }
bool Pool::tracing() const { return core_->tracing(); }
void Pool::record_span(std::string_view name, std::uint64_t start_ns, std::uint64_t duration_ns) {
  core_->record_span(name, start_ns, duration_ns);
}
void Pool::record_marker(std::string_view name) {
  if (record::AccessRecorder* rec = core_->access_recorder()) rec->marker(name);
}
const PoolOptions& Pool::options() const { return core_->options(); }
bool Pool::tier_enabled(Tier t) const { return core_->tier_enabled(t); }
std::string_view Pool::device_backend_name() const { return core_->device_backend_name(); }
std::string Pool::device_backend_reason() const { return core_->device_backend_reason(); }
std::string_view Pool::host_memory_kind() const { return core_->host_memory_kind(); }
std::string Pool::spill_directory() const { return core_->spill_directory(); }
void Pool::quiesce() { core_->quiesce(); }
std::vector<std::string> Pool::check_invariants() const { return core_->check_invariants(); }

}  // namespace spillway
