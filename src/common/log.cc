#include "common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace minik::log {
namespace {

std::mutex mu;
std::string component_name = "minik";
std::atomic<int> min_level{static_cast<int>(Level::kInfo)};

}  // namespace

void SetComponent(std::string component) {
  std::lock_guard lock(mu);
  component_name = std::move(component);
}

void SetLevel(Level level) {
  min_level = static_cast<int>(level);
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= min_level.load();
}

void Write(Level level, std::string_view message) {
  static const char kLetters[] = {'D', 'I', 'W', 'E'};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  localtime_r(&tv.tv_sec, &t);
  std::lock_guard lock(mu);
  std::fprintf(stderr, "%c%02d%02d %02d:%02d:%02d.%03d %s] %.*s\n",
               kLetters[static_cast<int>(level)], t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
               t.tm_sec, static_cast<int>(tv.tv_usec / 1000), component_name.c_str(),
               static_cast<int>(message.size()), message.data());
}

}  // namespace minik::log
