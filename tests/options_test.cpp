// tests/options_test.cpp — PoolOptions defaults, validation and from_env.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "spillway/options.hpp"

namespace spillway {
namespace {

class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~EnvVar() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST(Options, ParsesByteSizes) {
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  EXPECT_EQ(parse_byte_size("64K"), 65536u);
  EXPECT_EQ(parse_byte_size("64KiB"), 65536u);
  EXPECT_EQ(parse_byte_size("2 MiB"), 2u << 20);
  EXPECT_EQ(parse_byte_size("1.5G"), 3ull << 29);
  EXPECT_EQ(parse_byte_size("unlimited"), kUnlimited);
  for (const char* bad : {"", "abc", "12Q", "-5", "1.2.3", "K"}) {
    EXPECT_THROW(parse_byte_size(bad, "X"), std::invalid_argument) << bad;
  }
  try {
    parse_byte_size("12Q", "SPILLWAY_HOST_BYTES");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("SPILLWAY_HOST_BYTES"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("12Q"), std::string::npos);
  }
}

TEST(Options, DefaultsAreValid) {
  PoolOptions o;
  EXPECT_NO_THROW(o.validate());
  EXPECT_GT(o.host.capacity_bytes, 0u);
  EXPECT_EQ(o.disk.capacity_bytes, kUnlimited);
}

TEST(Options, FromEnvOverridesDefaults) {
  EnvVar a("SPILLWAY_DEVICE_BYTES", "8M");
  EnvVar b("SPILLWAY_DEVICE_BACKEND", "simulated");
  EnvVar c("SPILLWAY_HOST_BYTES", "16MiB");
  EnvVar d("SPILLWAY_DISK_BYTES", "1G");
  EnvVar e("SPILLWAY_COMPRESSION", "lz4");
  EnvVar f("SPILLWAY_POLICY", "lookahead");
  EnvVar g("SPILLWAY_IO_THREADS", "3");
  EnvVar h("SPILLWAY_PRESSURE_WAIT_MS", "250");
  EnvVar i("SPILLWAY_HIGH_WATERMARK", "0.8");
  EnvVar j("SPILLWAY_LOW_WATERMARK", "0.5");
  EnvVar k("SPILLWAY_DISK", "off");
  EnvVar l("SPILLWAY_STAGING_BUFFER_BYTES", "4M");
  EnvVar m("SPILLWAY_STAGING_BUFFERS", "8");
  const PoolOptions o = PoolOptions::from_env();
  EXPECT_EQ(o.device.staging_buffer_bytes, 4u << 20);
  EXPECT_EQ(o.device.staging_buffers, 8u);
  EXPECT_EQ(o.device.capacity_bytes, 8u << 20);
  EXPECT_EQ(o.device.backend, DeviceBackend::Simulated);
  EXPECT_EQ(o.host.capacity_bytes, 16u << 20);
  EXPECT_EQ(o.disk.capacity_bytes, 1u << 30);
  EXPECT_EQ(o.disk.compression, Compression::Lz4);
  EXPECT_EQ(o.policy, EvictionPolicy::Lookahead);
  EXPECT_EQ(o.io_threads, 3u);
  EXPECT_EQ(o.pressure_wait.count(), 250);
  EXPECT_DOUBLE_EQ(o.high_watermark, 0.8);
  EXPECT_DOUBLE_EQ(o.low_watermark, 0.5);
  EXPECT_FALSE(o.disk.enabled);
}

TEST(Options, FromEnvNamesTheBadVariable) {
  EnvVar a("SPILLWAY_POLICY", "fifo");
  try {
    PoolOptions::from_env();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("SPILLWAY_POLICY"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fifo"), std::string::npos) << e.what();
  }
}

TEST(Options, ByteSizesFoundByTheFuzzer) {
  // "." has no digit: an error naming the variable, not std::stod's "stod".
  try {
    parse_byte_size(".", "SPILLWAY_DEVICE_BYTES");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("SPILLWAY_DEVICE_BYTES"), std::string::npos) << e.what();
  }
  // Past 2^63 with a fraction: exact, not an overflowed llround.
  EXPECT_EQ(parse_byte_size("9500000000000000000.0"), 9500000000000000000ull);
  EXPECT_EQ(parse_byte_size("8T"), 8ull << 40);
}

TEST(Options, TraceVariables) {
  {
    EnvVar a("SPILLWAY_TRACE", "/tmp/run.json");
    EnvVar b("SPILLWAY_TRACE_MAX_EVENTS", "5000");
    EnvVar c("SPILLWAY_TRACE_KEEP", "last");
    const PoolOptions o = PoolOptions::from_env();
    EXPECT_EQ(o.trace_file, "/tmp/run.json");
    EXPECT_EQ(o.trace_max_events, 5000u);
    EXPECT_TRUE(o.trace_keep_last);
  }
  {
    EnvVar a("SPILLWAY_TRACE_KEEP", "middle");
    try {
      PoolOptions::from_env();
      FAIL();
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("SPILLWAY_TRACE_KEEP"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("middle"), std::string::npos) << e.what();
    }
  }
  {
    EnvVar a("SPILLWAY_TRACE", "/tmp/run.json");
    EnvVar b("SPILLWAY_TRACE_MAX_EVENTS", "0");
    EXPECT_THROW(PoolOptions::from_env(), std::invalid_argument);
  }
}

TEST(Options, ValidateRejectsOutOfRange) {
  PoolOptions o;
  o.io_threads = 0;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = {};
  o.low_watermark = 0.95;  // above high
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = {};
  o.high_watermark = 1.5;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = {};
  o.device.staging_buffer_bytes = (1 << 20) + 4096;  // not a whole number of MiB
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = {};
  o.device.staging_buffers = 1;  // nothing to overlap with
  EXPECT_THROW(o.validate(), std::invalid_argument);
  {
    EnvVar n("SPILLWAY_STAGING_BUFFERS", "4294967300");  // would wrap to 4 as unsigned
    EXPECT_THROW(PoolOptions::from_env(), std::invalid_argument);
  }
  EnvVar w("SPILLWAY_LOW_WATERMARK", "0.99");
  EXPECT_THROW(PoolOptions::from_env(), std::invalid_argument);
}

}  // namespace
}  // namespace spillway
