#pragma once
// The kubelet's HTTPS API, which the API server proxies for `kubectl logs`,
// `exec`, `attach` and `port-forward` (paths as Kubernetes' kubelet serves them):
//   GET /healthz
//   GET /containerLogs/{namespace}/{pod}/{container}?follow&previous&tailLines&
//       sinceSeconds&sinceTime&timestamps&limitBytes
//   GET|POST /exec/{namespace}/{pod}/{container}?command=...&stdin&stdout&stderr&tty
//   GET|POST /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty
//   GET|POST /portForward/{namespace}/{pod}
// Clients authenticate with certificates signed by the cluster CA.

#include <functional>
#include <memory>

#include "common/http.h"
#include "kubelet/kubelet.h"
#include "kubelet/pod_worker.h"

namespace minik::kubelet {

using WorkerLookup = std::function<PodWorker*(const std::string& ns, const std::string& name)>;

std::unique_ptr<http::Server> StartServer(KubeletContext& ctx, const KubeletOptions& opts,
                                          WorkerLookup lookup);

// Writes a container's log as `kubectl logs` shows it (the handler of
// /containerLogs), following it when asked until the container stops or the
// client goes away.
void ServeLogs(const std::string& log_path, const http::Request& req, http::ResponseWriter& w,
               const std::function<bool()>& running);

}  // namespace minik::kubelet
