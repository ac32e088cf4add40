#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/profile.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/log.h"

namespace minik::cli {

void Steps::Add(std::string title, std::function<void()> run, std::function<void()> undo) {
  steps_.push_back({std::move(title), std::move(run), std::move(undo)});
}

void Steps::Run(bool keep_on_failure) {
  for (size_t i = 0; i < steps_.size(); ++i) {
    auto start = std::chrono::steady_clock::now();
    std::printf("* %s ...\n", steps_[i].title.c_str());
    std::fflush(stdout);
    try {
      steps_[i].run();
    } catch (...) {
      if (!keep_on_failure) {
        for (size_t j = i + 1; j-- > 0;) {
          if (steps_[j].undo) {
            try {
              steps_[j].undo();
            } catch (const std::exception& e) {
              log::Warn("undo '{}': {}", steps_[j].title, e.what());
            }
          }
        }
      }
      throw;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  done (%.1fs)\n", secs);
    std::fflush(stdout);
  }
}

bool ApiServerReady(const std::string& profile, uint16_t port, std::string* why) {
  Credentials c;
  try {
    c = LoadCredentials(profile);
  } catch (const std::exception& e) {
    if (why) {
      *why = e.what();
    }
    return false;
  }
  http::ClientOptions o;
  o.ca_pem = c.ca_cert;
  o.cert_pem = c.client_cert;
  o.key_pem = c.client_key;
  o.timeout_ms = 3000;
  o.connect_timeout_ms = 1000;
  http::Client client("https://127.0.0.1:" + std::to_string(port), o);
  http::ClientResponse r = client.Do("GET", "/readyz");
  if (why) {
    *why = r.status ? "readyz answered " + std::to_string(r.status) + ": " + r.body : r.error;
  }
  return r.status == 200;
}

}  // namespace minik::cli
