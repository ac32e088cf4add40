#pragma once
// exec, attach and port-forward on the kubelet: the handlers behind
// /exec, /attach and /portForward, joining a client's stream session to a
// process in a container, to a container's attach socket, or to ports in the
// pod's network namespace.

#include "common/http.h"
#include "kubelet/pod_worker.h"

namespace minik::kubelet {

void ServeExec(KubeletContext& ctx, PodWorker& pod, const std::string& container,
               http::Request& req, http::ResponseWriter& w);
void ServeAttach(KubeletContext& ctx, PodWorker& pod, const std::string& container,
                 http::Request& req, http::ResponseWriter& w);
void ServePortForward(KubeletContext& ctx, PodWorker& pod, http::Request& req,
                      http::ResponseWriter& w);

}  // namespace minik::kubelet
