// `minik echo-server`: the HTTP server of the built-in image
// `minik/echo-server`, as minikube's tutorials use an echo server: it answers
// every request with what it received and where it runs.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "common/error.h"

namespace minik::cli {
namespace {

void Serve(int fd, const std::string& peer) {
  std::string req;
  char buf[8192];
  // Headers, then a body of Content-Length bytes.
  size_t header_end;
  while ((header_end = req.find("\r\n\r\n")) == std::string::npos) {
    ssize_t k = read(fd, buf, sizeof(buf));
    if (k <= 0 || req.size() > 1 << 20) {
      close(fd);
      return;
    }
    req.append(buf, static_cast<size_t>(k));
  }
  std::string head = req.substr(0, header_end);
  std::string body = req.substr(header_end + 4);
  size_t len = 0;
  std::istringstream hs(head);
  std::string request_line, line, headers;
  std::getline(hs, request_line);
  if (!request_line.empty() && request_line.back() == '\r') {
    request_line.pop_back();
  }
  while (std::getline(hs, line)) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    std::string name = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && value[0] == ' ') {
      value.erase(0, 1);
    }
    for (auto& ch : name) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    if (name == "content-length") {
      len = std::strtoul(value.c_str(), nullptr, 10);
    }
    headers += "\t" + name + "=" + value + "\n";
  }
  while (body.size() < len && len < (1 << 20)) {
    ssize_t k = read(fd, buf, sizeof(buf));
    if (k <= 0) {
      break;
    }
    body.append(buf, static_cast<size_t>(k));
  }
  std::istringstream rl(request_line);
  std::string method, target, version;
  rl >> method >> target >> version;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  auto env = [](const char* n) {
    const char* v = std::getenv(n);
    return std::string(v ? v : "");
  };
  std::string out = "Hostname: " + std::string(host) + "\n\nPod Information:\n";
  for (const char* n : {"POD_NAME", "POD_NAMESPACE", "POD_IP", "NODE_NAME"}) {
    if (!env(n).empty()) {
      out += std::string("\t") + n + "=" + env(n) + "\n";
    }
  }
  out += "\nServer values:\n\tserver_version=minik-echo-server/0.1.0\n\nRequest Information:\n";
  out += "\tclient_address=" + peer + "\n\tmethod=" + method +
         "\n\treal path=" + target.substr(0, target.find('?')) + "\n\tquery=" +
         (target.find('?') == std::string::npos ? "" : target.substr(target.find('?') + 1)) +
         "\n\trequest_version=" + version.substr(version.find('/') + 1) +
         "\n\trequest_uri=" + target + "\n\nRequest Headers:\n" + headers + "\nRequest Body:\n" +
         (body.empty() ? "\t-no body in request-\n" : body + "\n");
  std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                     std::to_string(out.size()) + "\r\nConnection: close\r\n\r\n" + out;
  size_t off = 0;
  while (off < resp.size()) {
    ssize_t w = write(fd, resp.data() + off, resp.size() - off);
    if (w <= 0) {
      break;
    }
    off += static_cast<size_t>(w);
  }
  close(fd);
}

}  // namespace

void AddEchoServer(CLI::App& app) {
  auto port = std::make_shared<int>(8080);
  CLI::App* cmd = app.add_subcommand("echo-server",
                                     "Serve HTTP, answering every request with what it received");
  cmd->group("Images");
  cmd->add_option("--port", *port, "Port to listen on (also $PORT)")->capture_default_str();
  cmd->callback([port] {
    if (const char* p = std::getenv("PORT"); p && *p) {
      *port = std::atoi(p);
    }
    signal(SIGPIPE, SIG_IGN);
    // As PID 1 of its container, a signal without a handler is ignored: exit
    // on SIGTERM (pod deletion) and SIGINT like the echo-server images do.
    signal(SIGTERM, [](int) { _exit(0); });
    signal(SIGINT, [](int) { _exit(0); });
    int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int dual = 0;
    setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &dual, sizeof(dual));
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<uint16_t>(*port));
    if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(lfd, 128) != 0) {
      throw SystemError("listen on port " + std::to_string(*port), errno);
    }
    std::fprintf(stderr, "echo-server listening on :%d\n", *port);
    for (;;) {
      sockaddr_in6 peer{};
      socklen_t len = sizeof(peer);
      int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      char ip[INET6_ADDRSTRLEN] = {};
      inet_ntop(AF_INET6, &peer.sin6_addr, ip, sizeof(ip));
      std::string p = ip;
      if (p.rfind("::ffff:", 0) == 0) {
        p = p.substr(7);
      }
      std::thread(Serve, fd, p).detach();
    }
  });
}

}  // namespace minik::cli
