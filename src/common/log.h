#pragma once
// Logging: one line per event on stderr, `I1127 22:58:06.123 component] message`,
// the klog layout Kubernetes users know. Thread-safe.

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace minik::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetComponent(std::string component);
void SetLevel(Level level);
bool Enabled(Level level);
void Write(Level level, std::string_view message);

template <typename... Args>
void Debug(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kDebug)) {
    Write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <typename... Args>
void Info(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kInfo)) {
    Write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <typename... Args>
void Warn(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kWarning, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Error(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace minik::log
