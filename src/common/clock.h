#pragma once
// Time and identity helpers: RFC 3339 timestamps as Kubernetes writes them,
// and random UIDs. Tests may swap the clock.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace minik {

using SystemTime = std::chrono::system_clock::time_point;

SystemTime Now();
void SetClockForTesting(std::function<SystemTime()> clock);

// "2026-11-27T22:58:06Z" (seconds precision, as metav1.Time).
std::string FormatTime(SystemTime t);
// "2026-11-27T22:58:06.123456Z" (as metav1.MicroTime).
std::string FormatMicroTime(SystemTime t);
// Parses RFC 3339 with optional fraction and a Z or +hh:mm offset; false when malformed.
bool ParseTime(const std::string& s, SystemTime* out);

// A Go duration as Kubernetes components take them on the command line:
// "10s", "1m30s", "500ms", "1.5h", "0". nullopt when malformed or negative.
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& s);

// A random RFC 4122 version 4 UUID.
std::string NewUid();
// `n` random characters from Kubernetes' generateName alphabet (no vowels).
std::string RandomSuffix(int n);

}  // namespace minik
