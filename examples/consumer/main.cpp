// A program outside the spillway tree: more data than the device and host
// budgets together, written through pins and read back.
#include <spillway/spillway.hpp>

#include <cstdio>
#include <vector>

int main() {
  spillway::PoolOptions options;
  options.device.backend = spillway::DeviceBackend::Simulated;
  options.device.capacity_bytes = 1 << 20;
  options.host.capacity_bytes = 2 << 20;
  spillway::Pool pool(options);

  std::vector<spillway::Buffer> buffers;
  for (int i = 0; i < 16; ++i) {  // 16 x 256 KiB = 4 MiB > 1 + 2 MiB
    buffers.push_back(pool.allocate(256 * 1024, spillway::Tier::Device, "consumer"));
    spillway::Pin pin = buffers.back().pin(spillway::Tier::Device);
    for (int& v : pin.as<int>()) v = i;
  }
  int bad = 0;
  for (int i = 0; i < 16; ++i) {
    spillway::Pin pin = buffers[i].pin(spillway::Tier::Host, spillway::Access::Read);
    for (int v : pin.as<int>()) bad += v != i;
  }
  const spillway::PoolStats stats = pool.stats();
  std::printf("consumer: %d wrong values; %llu buffers went to disk and back\n", bad,
              static_cast<unsigned long long>(stats.move(spillway::Tier::Disk, spillway::Tier::Host).moves));
  return bad == 0 && stats.move(spillway::Tier::Disk, spillway::Tier::Host).moves > 0 ? 0 : 1;
}
