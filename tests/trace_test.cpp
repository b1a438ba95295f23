// tests/trace_test.cpp — the event recorder and the Perfetto trace.
//
// Recorder: events from many threads all arrive, in each thread's order;
// a full ring drops and says how many; flush() delivers what was pushed.
// Pool: events match what stats() counted, with nothing recorded while off.
// Trace file: valid Trace Event JSON in which every async begin has its
// end, every flow has both ends (an eviction before the fetch it points
// to), counters are monotonic in time, and names and args are the
// documented ones (docs/profiling.md, "What a trace holds").
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "spillway/graph/graph.hpp"
#include "src/instrument/chrome_trace.hpp"
#include "src/instrument/recorder.hpp"
#include "test_util.hpp"

namespace spillway {
namespace {

using nlohmann::json;
using testing::ScratchDir;

// Keeps every event it is given.
class CollectingSink : public TraceSink {
 public:
  void record(const TraceEvent& e) override {
    std::lock_guard lk(mu);
    events.push_back(e);
  }
  std::size_t count(TraceKind k) {
    std::lock_guard lk(mu);
    std::size_t n = 0;
    for (const auto& e : events) n += e.kind == k;
    return n;
  }
  std::mutex mu;
  std::vector<TraceEvent> events;
};

instrument::RawEvent raw(std::uint64_t buffer, std::uint32_t thread) {
  return instrument::RawEvent{instrument::steady_now_ns(), buffer, 0, 0, 0, thread, TraceKind::Pin,
                              Tier::Host, Tier::Host, EvictionReason::Pressure, true};
}

TEST(Recorder, EveryEventFromEveryThreadArrivesInThatThreadsOrder) {
  auto sink = std::make_shared<CollectingSink>();
  constexpr int kThreads = 4;
  constexpr std::uint64_t kPerThread = 50000;
  {
    instrument::Recorder rec(sink, nullptr, 1 << 20);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&rec, t] {
        for (std::uint64_t i = 1; i <= kPerThread; ++i) {
          ASSERT_TRUE(rec.push(raw(i, static_cast<std::uint32_t>(t))));
        }
      });
    }
    for (auto& t : ts) t.join();
    rec.flush();
    EXPECT_EQ(rec.pushed(), kThreads * kPerThread);
    EXPECT_EQ(rec.dropped(), 0u);
    std::lock_guard lk(sink->mu);
    EXPECT_EQ(sink->events.size(), kThreads * kPerThread);  // flush() delivered them all
  }
  std::array<std::uint64_t, kThreads> last{};
  for (const auto& e : sink->events) {
    ASSERT_EQ(e.buffer_id, last[e.thread] + 1) << "thread " << e.thread << " out of order";
    last[e.thread] = e.buffer_id;
  }
}

// Blocks in record() until released: the ring fills behind it.
class StuckSink : public TraceSink {
 public:
  void record(const TraceEvent& e) override {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return released; });
    events.push_back(e);
  }
  void release() {
    std::lock_guard lk(mu);
    released = true;
    cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::vector<TraceEvent> events;
};

TEST(Recorder, AFullRingDropsCountsAndReportsTheLoss) {
  auto sink = std::make_shared<StuckSink>();
  instrument::Recorder rec(sink, nullptr, 64);
  std::uint64_t accepted = 0;
  for (std::uint64_t i = 1; i <= 1000; ++i) accepted += rec.push(raw(i, 1));
  // The recorder thread may have taken one event out before it got stuck.
  EXPECT_LE(accepted, 65u);
  EXPECT_GE(accepted, 64u);
  EXPECT_EQ(rec.dropped(), 1000 - accepted);
  sink->release();
  rec.flush();
  std::lock_guard lk(sink->mu);
  std::uint64_t delivered = 0, reported_lost = 0;
  for (const auto& e : sink->events) {
    if (e.kind == TraceKind::Dropped) reported_lost += e.bytes;
    else ++delivered;
  }
  EXPECT_EQ(delivered, accepted);
  EXPECT_EQ(reported_lost, 1000 - accepted);
}

TEST(Recorder, LabelsAreInternedAndResolved) {
  auto sink = std::make_shared<CollectingSink>();
  {
    instrument::Recorder rec(sink, nullptr);
    const auto a = rec.intern("weights"), b = rec.intern("activations");
    EXPECT_NE(a, b);
    EXPECT_EQ(rec.intern("weights"), a);
    EXPECT_EQ(rec.intern(""), 0u);
    auto e = raw(1, 1);
    e.label = b;
    rec.push(e);
  }
  ASSERT_EQ(sink->events.size(), 1u);
  EXPECT_EQ(sink->events[0].label, "activations");
}

// A pool that spills, fetches, waits and evicts clean copies.
void busy(Pool& pool, int buffers = 12) {
  std::vector<Buffer> bufs;
  for (int i = 0; i < buffers; ++i) {
    bufs.push_back(pool.allocate(256 << 10, Tier::Device, "busy " + std::to_string(i % 3)));
    Pin p = bufs.back().pin(Tier::Device);
    testing::fill_pattern(p.data(), p.size(), static_cast<std::uint64_t>(i), 0);
  }
  for (int round = 0; round < 2; ++round) {
    for (auto& b : bufs) {
      Pin p = b.pin(Tier::Device, Access::Read);
    }
  }
  pool.quiesce();
}

TEST(PoolTrace, EventsMatchTheStatsAndNothingIsRecordedWhileOff) {
  ScratchDir dir;
  Pool pool(testing::small_options(dir.path(), 1 << 20, 1 << 20));
  auto sink = std::make_shared<CollectingSink>();
  busy(pool, 4);  // before tracing: nothing recorded
  const PoolStats before = pool.stats();
  EXPECT_FALSE(pool.tracing());
  pool.set_trace(sink);
  EXPECT_TRUE(pool.tracing());
  busy(pool);
  const PoolStats after = pool.stats();
  pool.set_trace(nullptr);  // delivers the rest
  EXPECT_FALSE(pool.tracing());
  EXPECT_EQ(sink->count(TraceKind::Alloc), 12u);
  EXPECT_EQ(sink->count(TraceKind::Free), 12u);
  EXPECT_EQ(sink->count(TraceKind::Pin), after.pins - before.pins);
  EXPECT_EQ(sink->count(TraceKind::PinWait), after.pin_waits - before.pin_waits);
  std::uint64_t down = 0, up = 0;
  for (int f = 0; f < kTierCount; ++f) {
    for (int t = 0; t < kTierCount; ++t) {
      const auto n = after.moves[f][t].moves - before.moves[f][t].moves;
      (t > f ? down : up) += n;
    }
  }
  EXPECT_GT(down, 0u);
  EXPECT_GT(up, 0u);
  EXPECT_EQ(sink->count(TraceKind::SpillEnd), down);
  EXPECT_EQ(sink->count(TraceKind::SpillBegin), down);
  EXPECT_EQ(sink->count(TraceKind::FetchEnd), up);
  EXPECT_EQ(sink->count(TraceKind::Dropped), 0u);
  EXPECT_GT(sink->count(TraceKind::TierUsage), 0u);
  // Pin waits carry how long they waited; labels and threads are filled in.
  std::lock_guard lk(sink->mu);
  std::set<std::string> labels;
  for (const auto& e : sink->events) {
    if (e.kind == TraceKind::PinWait) EXPECT_GT(e.duration_ns, 0u);
    if (e.kind == TraceKind::Alloc) labels.insert(e.label);
    if (e.kind != TraceKind::TierUsage) EXPECT_NE(e.thread, 0u);
  }
  EXPECT_EQ(labels, (std::set<std::string>{"busy 0", "busy 1", "busy 2"}));
  const std::size_t n = sink->events.size();
  busy(pool, 2);  // off again
  EXPECT_EQ(sink->events.size(), n);
}

json load(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);  // throws on invalid JSON
}

// Checks the invariants the format promises; returns the events by phase.
std::map<std::string, int> check_trace(const json& doc) {
  EXPECT_TRUE(doc.contains("traceEvents"));
  std::map<std::string, int> phases;
  std::map<std::pair<std::string, std::uint64_t>, double> open;  // (cat, id) -> begin ts
  std::map<std::uint64_t, double> flow_out;                      // bind_id -> ts
  std::set<std::uint64_t> flow_in;
  std::map<std::string, double> counter_ts;
  std::set<int> named_tids;
  for (const auto& e : doc["traceEvents"]) {
    const std::string ph = e.at("ph");
    ++phases[ph];
    EXPECT_EQ(e.at("pid"), 1);
    if (ph == "M") {
      if (e.at("name") == "thread_name") named_tids.insert(e.at("tid").get<int>());
      continue;
    }
    const double ts = e.at("ts");
    EXPECT_GE(ts, 0.0);
    if (ph == "b") {
      const auto key = std::make_pair(e.at("cat").get<std::string>(), e.at("id").get<std::uint64_t>());
      EXPECT_FALSE(open.count(key)) << "async id reused while open: " << e.dump();
      open[key] = ts;
      const auto& a = e.at("args");
      for (const char* k : {"buffer", "label", "bytes", "from", "to", "reason", "ok", "gbps"}) {
        EXPECT_TRUE(a.contains(k)) << k << " missing in " << e.dump();
      }
      const std::string cat = e.at("cat");
      EXPECT_TRUE(cat == "spill" || cat == "fetch") << cat;
      EXPECT_EQ(e.at("name"), cat + " " + a.at("from").get<std::string>() + "->" + a.at("to").get<std::string>());
    } else if (ph == "e") {
      const auto key = std::make_pair(e.at("cat").get<std::string>(), e.at("id").get<std::uint64_t>());
      auto it = open.find(key);
      EXPECT_NE(it, open.end()) << "async end without a begin: " << e.dump();
      if (it != open.end()) {
        EXPECT_GE(ts, it->second);
        open.erase(it);
      }
    } else if (ph == "C") {
      const std::string name = e.at("name");
      EXPECT_TRUE(name == "device bytes" || name == "host bytes" || name == "disk bytes") << name;
      for (const char* k : {"used", "pinned", "capacity"}) EXPECT_TRUE(e.at("args").contains(k));
      if (counter_ts.count(name)) EXPECT_GE(ts, counter_ts[name]) << "counter " << name << " went back in time";
      counter_ts[name] = ts;
    } else if (ph == "X") {
      EXPECT_GE(e.at("dur").get<double>(), 0.0);
      if (e.at("cat") != "step") EXPECT_TRUE(named_tids.count(e.at("tid").get<int>())) << e.dump();
    }
    if (e.contains("bind_id")) {
      const auto id = e.at("bind_id").get<std::uint64_t>();
      if (e.value("flow_out", false)) {
        EXPECT_FALSE(flow_out.count(id)) << "flow " << id << " starts twice";
        flow_out[id] = ts;
      }
      if (e.value("flow_in", false)) {
        EXPECT_TRUE(flow_out.count(id)) << "flow " << id << " ends before it starts";
        if (flow_out.count(id)) EXPECT_LE(flow_out[id], ts);
        EXPECT_TRUE(flow_in.insert(id).second) << "flow " << id << " ends twice";
      }
    }
  }
  EXPECT_TRUE(open.empty()) << open.size() << " async slices never ended";
  EXPECT_EQ(flow_out.size(), flow_in.size()) << "flows without an end";
  phases["flows"] = static_cast<int>(flow_in.size());
  return phases;
}

TEST(PoolTrace, ChromeTraceIsValidAndComplete) {
  ScratchDir dir;
  const std::string path = dir.path() + "/trace.json";
  PoolStats s;
  {
    Pool pool(testing::small_options(dir.path(), 1 << 20, 1 << 20));
    auto sink = std::make_shared<instrument::ChromeTraceSink>(path);
    pool.set_trace(sink);
    busy(pool);
    s = pool.stats();
    pool.set_trace(nullptr);
    sink->write();
    EXPECT_EQ(sink->dropped(), 0u);
  }
  const json doc = load(path);
  const auto phases = check_trace(doc);
  std::uint64_t moves = 0;
  for (const auto& row : s.moves) {
    for (const auto& m : row) moves += m.moves;
  }
  EXPECT_EQ(static_cast<std::uint64_t>(phases.at("b")), moves) << "one async slice per move";
  EXPECT_GT(phases.at("flows"), 0) << "buffers evicted and fetched back: there must be flows";
  EXPECT_GT(phases.at("C"), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(phases.at("X")), s.pin_waits) << "one slice per pin wait";
}

TEST(PoolTrace, ExecutorNodesAreSlicesOnTheirThread) {
  ScratchDir dir;
  const std::string path = dir.path() + "/graph.json";
  {
    Pool pool(testing::small_options(dir.path(), 1 << 20, 4 << 20));
    auto sink = std::make_shared<instrument::ChromeTraceSink>(path);
    pool.set_trace(sink);
    graph::Session s(pool);
    auto a = s.constant(graph::Shape{{2, 2}}, std::vector<float>{1, 2, 3, 4});
    auto c = s.relu(s.matmul(a, a));
    s.run({c});
    pool.set_trace(nullptr);
    sink->write();
  }
  const json doc = load(path);
  check_trace(doc);
  std::set<std::string> nodes;
  for (const auto& e : doc["traceEvents"]) {
    if (e.value("cat", "") == "node") nodes.insert(e.at("name").get<std::string>());
  }
  EXPECT_EQ(nodes.size(), 2u) << "MatMul and Relu (constants are not executed)";
}

TEST(PoolTrace, TheCapKeepsTheFileValidAndSaysWhatWasLeftOut) {
  ScratchDir dir;
  const std::string path = dir.path() + "/capped.json";
  {
    Pool pool(testing::small_options(dir.path(), 1 << 20, 1 << 20));
    auto sink = std::make_shared<instrument::ChromeTraceSink>(path, 10);
    pool.set_trace(sink);
    busy(pool);
    pool.set_trace(nullptr);
    EXPECT_EQ(sink->events(), 10u);
    EXPECT_GT(sink->dropped(), 0u);
  }  // the destructor writes
  const json doc = load(path);
  check_trace(doc);
  EXPECT_GT(doc["otherData"]["pool_events_over_cap"].get<std::uint64_t>(), 0u);
  bool said = false;
  for (const auto& e : doc["traceEvents"]) {
    said |= e.value("name", "").rfind("trace incomplete", 0) == 0;
  }
  EXPECT_TRUE(said);
}

TEST(PoolTrace, KeepLastKeepsTheNewestEvents) {
  ScratchDir dir;
  const std::string first_path = dir.path() + "/first.json", last_path = dir.path() + "/last.json";
  {
    Pool pool(testing::small_options(dir.path(), 1 << 20, 1 << 20));
    auto first = std::make_shared<instrument::ChromeTraceSink>(first_path, 10);
    auto last = std::make_shared<instrument::ChromeTraceSink>(last_path, 10,
                                                              instrument::ChromeTraceSink::Keep::Last);
    // One recorder feeds both through a tee.
    struct Tee : TraceSink {
      std::vector<std::shared_ptr<TraceSink>> to;
      void record(const TraceEvent& e) override {
        for (auto& s : to) s->record(e);
      }
    };
    auto tee = std::make_shared<Tee>();
    tee->to = {first, last};
    pool.set_trace(tee);
    busy(pool);
    pool.set_trace(nullptr);
    EXPECT_EQ(first->events(), 10u);
    EXPECT_EQ(last->events(), 10u);
    EXPECT_EQ(first->dropped(), last->dropped());
  }
  auto slice_times = [](const json& doc) {
    std::vector<double> ts;
    for (const auto& e : doc["traceEvents"]) {
      if (e.at("ph") == "b" || e.at("ph") == "X" || e.at("ph") == "n") ts.push_back(e.at("ts").get<double>());
    }
    return ts;
  };
  const json f = load(first_path), l = load(last_path);
  check_trace(f);
  check_trace(l);
  const auto tf = slice_times(f), tl = slice_times(l);
  ASSERT_FALSE(tf.empty());
  ASSERT_FALSE(tl.empty());
  EXPECT_LT(*std::max_element(tf.begin(), tf.end()), *std::min_element(tl.begin(), tl.end()))
      << "the first ten and the last ten events overlap";
  EXPECT_EQ(l["otherData"]["kept"], "last");
}

TEST(PoolTrace, TraceFileOptionRecordsThePoolsWholeLife) {
  ScratchDir dir;
  const std::string path = dir.path() + "/life.json";
  {
    PoolOptions o = testing::small_options(dir.path(), 1 << 20, 1 << 20);
    o.trace_file = path;
    Pool pool(o);
    EXPECT_TRUE(pool.tracing());
    busy(pool);
  }
  const auto phases = check_trace(load(path));
  EXPECT_GT(phases.at("b"), 0);
}

TEST(PoolTrace, AnUnwritableTraceFileIsAnErrorAtConstruction) {
  ScratchDir dir;
  PoolOptions o = testing::small_options(dir.path(), 1 << 20, 1 << 20);
  o.trace_file = dir.path() + "/no/such/dir/trace.json";
  try {
    Pool pool(o);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/trace.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace spillway
