#include "common/unix_socket.h"

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

using namespace minik;

namespace {

// Connects to `path` and returns the byte the listener at `lfd` sends.
char Exchange(int lfd, const std::string& path, char token) {
  std::string err;
  int c = unix_socket::Connect(path, &err);
  REQUIRE(c >= 0);
  int a = accept(lfd, nullptr, nullptr);
  REQUIRE(a >= 0);
  REQUIRE(write(a, &token, 1) == 1);
  char got = 0;
  REQUIRE(read(c, &got, 1) == 1);
  close(a);
  close(c);
  return got;
}

}  // namespace

TEST_CASE("unix sockets work at paths longer than sockaddr_un holds") {
  auto base = std::filesystem::temp_directory_path() / ("minik-sock-" + std::to_string(getpid()));
  // Two directories that share the first 150 bytes: cut to 107 they would be one path.
  auto deep = base / std::string(140, 'd');
  std::filesystem::create_directories(deep / "one");
  std::filesystem::create_directories(deep / "two");
  std::string p1 = (deep / "one" / "attach.sock").string();
  std::string p2 = (deep / "two" / "attach.sock").string();
  REQUIRE(p1.size() > 150);

  std::string err;
  int l1 = unix_socket::Listen(p1, 0, &err);
  REQUIRE(l1 >= 0);
  int l2 = unix_socket::Listen(p2, 0, &err);
  REQUIRE(l2 >= 0);  // would fail with "address in use" if the paths were cut
  CHECK(std::filesystem::is_socket(p1));
  CHECK(std::filesystem::is_socket(p2));
  CHECK(Exchange(l1, p1, '1') == '1');
  CHECK(Exchange(l2, p2, '2') == '2');

  // Listening again replaces a stale socket file.
  close(l1);
  l1 = unix_socket::Listen(p1, 0, &err);
  CHECK(l1 >= 0);
  close(l1);
  close(l2);

  SECTION("errors name the path") {
    int c = unix_socket::Connect((deep / "none" / "x.sock").string(), &err);
    CHECK(c < 0);
    CHECK(err.find("none") != std::string::npos);
    c = unix_socket::Connect(p2, &err);  // nobody listens any more
    CHECK(c < 0);
    CHECK(err.find("connect to " + p2) != std::string::npos);
  }
  std::filesystem::remove_all(base);
}
