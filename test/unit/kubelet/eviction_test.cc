#include "kubelet/eviction.h"

#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "common/error.h"

using namespace minik::kubelet::eviction;

TEST_CASE("eviction thresholds parse as the kubelet's --eviction-hard") {
  auto ts = ParseThresholds(kDefaultHard);
  REQUIRE(ts.size() == 4);
  CHECK(ts[0].signal == Signal::kMemoryAvailable);
  CHECK(ts[0].quantity == 100 * 1024 * 1024);
  CHECK(ts[1].signal == Signal::kNodefsAvailable);
  CHECK(ts[1].quantity == -1);
  CHECK(ts[1].percentage == 10);
  CHECK(ts[1].Value(1000) == 100);
  CHECK(ts[2].signal == Signal::kNodefsInodesFree);
  CHECK(ts[3].signal == Signal::kImagefsAvailable);

  auto one = ParseThresholds(" nodefs.available < 2.5Gi ");
  REQUIRE(one.size() == 1);
  CHECK(one[0].quantity == 2684354560);
  CHECK(ParseThresholds("").empty());

  auto error_of = [](const std::string& spec) {
    try {
      ParseThresholds(spec);
    } catch (const minik::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error_of("memory.available>1Gi"), Catch::Contains("expected SIGNAL<QUANTITY"));
  CHECK_THAT(error_of("memory.free<1Gi"), Catch::Contains("unknown signal \"memory.free\""));
  CHECK_THAT(error_of("nodefs.available<120%"), Catch::Contains("0% to 100%"));
  CHECK_THAT(error_of("memory.available<lots"), Catch::Contains("\"lots\" is not a quantity"));
}

TEST_CASE("a threshold is crossed when less is available than it names") {
  auto ts = ParseThresholds("memory.available<100Mi,nodefs.available<10%");
  std::map<Signal, Observation> obs;
  obs[Signal::kMemoryAvailable] = {200 << 20, 1 << 30};
  obs[Signal::kNodefsAvailable] = {50, 1000};
  auto crossed = Crossed(ts, obs);
  REQUIRE(crossed.size() == 1);
  CHECK(crossed[0].signal == Signal::kNodefsAvailable);
  obs[Signal::kMemoryAvailable].available = 99 << 20;
  obs[Signal::kNodefsAvailable].available = 100;  // exactly at the threshold: not below
  crossed = Crossed(ts, obs);
  REQUIRE(crossed.size() == 1);
  CHECK(crossed[0].signal == Signal::kMemoryAvailable);
  // Signals that cannot be observed never cross.
  obs.erase(Signal::kMemoryAvailable);
  CHECK(Crossed(ts, obs).empty());
}

TEST_CASE("pods are ranked over-request first, then by priority, then by use") {
  std::vector<Candidate> pods = {
      {"within-request", 500, 1000, 0},
      {"small-over", 200, 100, 0},
      {"big-over", 900, 0, 0},
      {"important-over", 5000, 0, 1000},
  };
  Rank(&pods);
  std::vector<std::string> order;
  for (const auto& p : pods) {
    order.push_back(p.uid);
  }
  CHECK(order ==
        std::vector<std::string>{"big-over", "small-over", "important-over", "within-request"});
}

TEST_CASE("disk usage counts a tree's own filesystem only") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("minik-du-" + std::to_string(getpid()));
  fs::create_directories(dir / "a" / "b");
  {
    std::ofstream f(dir / "a" / "b" / "data");
    f << std::string(64 * 1024, 'x');
  }
  DiskUse u = DiskUsage(dir.string());
  CHECK(u.bytes >= 64 * 1024);
  CHECK(u.inodes == 3);  // a, a/b, a/b/data
  CHECK(DiskUsage((dir / "missing").string()).bytes == 0);
  if (geteuid() == 0) {
    fs::create_directories(dir / "mnt");
    REQUIRE(mount("tmpfs", (dir / "mnt").c_str(), "tmpfs", 0, "size=4m") == 0);
    {
      std::ofstream f(dir / "mnt" / "big");
      f << std::string(1024 * 1024, 'y');
    }
    DiskUse with_mount = DiskUsage(dir.string());
    umount2((dir / "mnt").c_str(), MNT_DETACH);
    CHECK(with_mount.bytes < u.bytes + 64 * 1024);  // the tmpfs file is not counted
  }
  fs::remove_all(dir);
}
