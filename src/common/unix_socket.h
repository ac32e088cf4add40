#pragma once
// Unix stream sockets at any path. A sockaddr_un holds at most 107 bytes of
// path, and state directories under a deep MINIK_HOME are longer: a longer
// path would be cut silently, and two sockets that share a long prefix would
// then be one. Longer paths are reached through /proc/self/fd/<dir>/<name>.

#include <string>

namespace minik::unix_socket {

// A listening socket bound at `path` (an old socket file there is replaced),
// or -1 with *error set. `flags` go to socket(2), e.g. SOCK_NONBLOCK.
int Listen(const std::string& path, int flags, std::string* error);
// A connected socket, or -1 with *error set.
int Connect(const std::string& path, std::string* error);

}  // namespace minik::unix_socket
