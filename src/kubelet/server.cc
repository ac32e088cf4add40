#include "kubelet/server.h"

#include <sys/stat.h>

#include <deque>
#include <fstream>
#include <thread>

#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "kubelet/exec.h"
#include "kubelet/shim.h"

namespace minik::kubelet {
namespace {

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  std::stringstream ss(path);
  std::string p;
  while (std::getline(ss, p, '/')) {
    if (!p.empty()) {
      out.push_back(p);
    }
  }
  return out;
}

void Fail(http::ResponseWriter& w, int code, const std::string& msg) {
  w.Send(code, {{"Content-Type", "text/plain; charset=utf-8"}}, msg + "\n");
}

}  // namespace

void ServeLogs(const std::string& log_path, const http::Request& req, http::ResponseWriter& w,
               const std::function<bool()>& running) {
  bool follow = req.Param("follow") == "true" || req.Param("follow") == "1";
  bool timestamps = req.Param("timestamps") == "true" || req.Param("timestamps") == "1";
  long tail = req.Has("tailLines") ? std::atol(req.Param("tailLines").c_str()) : -1;
  long long limit = req.Has("limitBytes") ? std::atoll(req.Param("limitBytes").c_str()) : -1;
  SystemTime since{};
  bool has_since = false;
  if (req.Has("sinceSeconds")) {
    since = Now() - std::chrono::seconds(std::atol(req.Param("sinceSeconds").c_str()));
    has_since = true;
  } else if (req.Has("sinceTime")) {
    has_since = ParseTime(req.Param("sinceTime"), &since);
  }
  std::ifstream in(log_path);
  if (!in) {
    Fail(w, 404, "no logs for this container yet: " + log_path);
    return;
  }
  auto render = [&](const LogLine& l) {
    std::string out = timestamps ? l.timestamp + " " + l.text : l.text;
    return l.partial ? out : out + "\n";
  };
  auto keep = [&](const LogLine& l) {
    if (!has_since) {
      return true;
    }
    SystemTime t;
    return ParseTime(l.timestamp, &t) && t >= since;
  };
  std::deque<std::string> lines;
  std::string raw;
  long long sent = 0;
  while (std::getline(in, raw)) {
    LogLine l;
    if (ParseLogLine(raw, &l) && keep(l)) {
      lines.push_back(render(l));
      if (tail >= 0 && static_cast<long>(lines.size()) > tail) {
        lines.pop_front();
      }
    }
  }
  if (!w.StartStream(200, {{"Content-Type", "text/plain"}})) {
    return;
  }
  std::string batch;
  for (const auto& l : lines) {
    if (limit >= 0 && sent + static_cast<long long>(l.size()) > limit) {
      batch += l.substr(0, static_cast<size_t>(limit - sent));
      w.WriteChunk(batch);
      return;
    }
    batch += l;
    sent += static_cast<long long>(l.size());
  }
  if (!batch.empty() && !w.WriteChunk(batch)) {
    return;
  }
  if (!follow) {
    return;
  }
  // Follow: new lines as they come, across rotation, until the container stops.
  in.clear();
  struct stat st0;
  ino_t inode = stat(log_path.c_str(), &st0) == 0 ? st0.st_ino : 0;
  std::string partial;
  int idle_after_exit = 0;
  for (;;) {
    bool got = false;
    while (std::getline(in, raw)) {
      if (in.eof()) {
        partial += raw;  // a line still being written
        break;
      }
      raw = partial + raw;
      partial.clear();
      LogLine l;
      if (ParseLogLine(raw, &l)) {
        std::string out = render(l);
        if (limit >= 0 && sent + static_cast<long long>(out.size()) > limit) {
          w.WriteChunk(out.substr(0, static_cast<size_t>(limit - sent)));
          return;
        }
        sent += static_cast<long long>(out.size());
        if (!w.WriteChunk(out)) {
          return;
        }
        got = true;
      }
    }
    in.clear();
    if (w.ClientGone()) {
      return;
    }
    struct stat st;
    if (stat(log_path.c_str(), &st) == 0 && st.st_ino != inode) {
      // Rotated: read the new file from its start.
      in.close();
      in.open(log_path);
      inode = st.st_ino;
      continue;
    }
    if (!got) {
      if (!running()) {
        if (++idle_after_exit > 3) {
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

std::unique_ptr<http::Server> StartServer(KubeletContext& ctx, const KubeletOptions& o,
                                          WorkerLookup lookup) {
  http::ServerOptions so;
  so.address = o.bind_address;
  so.port = o.port;
  so.cert_pem = fs::ReadFile(o.cert_dir + "/kubelet-serving.crt");
  so.key_pem = fs::ReadFile(o.cert_dir + "/kubelet-serving.key");
  so.client_ca_pem = fs::ReadFile(o.cert_dir + "/ca.crt");
  auto server = std::make_unique<http::Server>(
      so, [&ctx, lookup](http::Request& req, http::ResponseWriter& w) {
        std::vector<std::string> p = Split(req.path);
        if (p.size() == 1 && p[0] == "healthz") {
          w.Send(200, {{"Content-Type", "text/plain"}}, "ok");
          return;
        }
        if (!req.authenticated) {
          Fail(w, 401, "Unauthorized");
          return;
        }
        if (p.size() >= 3 && (p[0] == "containerLogs" || p[0] == "exec" || p[0] == "attach" ||
                              p[0] == "portForward")) {
          PodWorker* worker = lookup(p[1], p[2]);
          if (!worker) {
            Fail(w, 404, "pod " + p[1] + "/" + p[2] + " is not running on this node");
            return;
          }
          if (p[0] == "containerLogs") {
            std::string container = p.size() > 3 ? p[3] : "";
            auto run = worker->Find(container);
            if (!run) {
              Fail(w, 400,
                   "container \"" + container + "\" in pod \"" + p[2] + "\" is waiting to start");
              return;
            }
            bool previous = req.Param("previous") == "true" || req.Param("previous") == "1";
            if (previous && run->previous_log_path.empty()) {
              Fail(w, 400,
                   "previous terminated container \"" + container + "\" in pod \"" + p[2] +
                       "\" not found");
              return;
            }
            std::string path = previous ? run->previous_log_path : run->log_path;
            ServeLogs(path, req, w, [worker, container, previous] {
              if (previous) {
                return false;
              }
              auto r = worker->Find(container);
              return r && r->running;
            });
            return;
          }
          if (p[0] == "portForward") {
            ServePortForward(ctx, *worker, req, w);
            return;
          }
          if (p.size() < 4) {
            Fail(w, 400, "a container name is required");
            return;
          }
          if (p[0] == "exec") {
            ServeExec(ctx, *worker, p[3], req, w);
          } else {
            ServeAttach(ctx, *worker, p[3], req, w);
          }
          return;
        }
        Fail(w, 404, "404 page not found");
      });
  server->Start();
  return server;
}

}  // namespace minik::kubelet
