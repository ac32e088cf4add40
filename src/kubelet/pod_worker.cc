#include "kubelet/pod_worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "api/quantity.h"
#include "common/base64.h"
#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/log.h"
#include "kubelet/shim.h"
#include "kubelet/volumes.h"

namespace minik::kubelet {
namespace {

constexpr int kMaxBackoffSeconds = 300;
constexpr int kBackoffResetSeconds = 600;

bool ProcessAlive(int pid) {
  return pid > 0 && kill(pid, 0) == 0;
}

const json kNone = json::object();

json Containers(const json& pod, const char* field) {
  const json* c = Find(pod, std::string("spec.") + field);
  return c && c->is_array() ? *c : json::array();
}

std::string RestartPolicy(const json& pod) {
  return GetString(pod, "spec.restartPolicy", "Always");
}

// The uid and gid for a user spec from the image ("1000", "1000:1000", "nobody").
void ResolveUser(const std::string& rootfs, const std::string& user, int* uid, int* gid) {
  if (user.empty()) {
    return;
  }
  std::string u = user, g;
  auto colon = user.find(':');
  if (colon != std::string::npos) {
    u = user.substr(0, colon);
    g = user.substr(colon + 1);
  }
  auto lookup = [&](const std::string& file, const std::string& name, int field) -> int {
    std::ifstream in(rootfs + file);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> parts;
      std::stringstream ss(line);
      std::string p;
      while (std::getline(ss, p, ':')) {
        parts.push_back(p);
      }
      if (parts.size() > static_cast<size_t>(field) && parts[0] == name) {
        return std::atoi(parts[static_cast<size_t>(field)].c_str());
      }
    }
    return -1;
  };
  bool numeric = !u.empty() && std::all_of(u.begin(), u.end(), ::isdigit);
  if (numeric) {
    *uid = std::atoi(u.c_str());
  } else {
    int v = lookup("/etc/passwd", u, 2);
    if (v < 0) {
      throw Error("unable to find user " + u + " in the image's /etc/passwd");
    }
    *uid = v;
    int pg = lookup("/etc/passwd", u, 3);
    if (pg >= 0) {
      *gid = pg;
    }
  }
  if (!g.empty()) {
    *gid = std::all_of(g.begin(), g.end(), ::isdigit) ? std::atoi(g.c_str())
                                                      : lookup("/etc/group", g, 2);
  }
}

}  // namespace

PodWorker::PodWorker(KubeletContext& ctx, client::Object pod, std::string reject)
    : ctx_(ctx), pod_(std::move(pod)), evict_message_(std::move(reject)) {
  uid_ = GetString(*pod_, "metadata.uid");
  ns_ = GetString(*pod_, "metadata.namespace");
  name_ = GetString(*pod_, "metadata.name");
  thread_ = std::thread([this] { Loop(); });
}

PodWorker::~PodWorker() {
  Detach();
}

void PodWorker::Update(client::Object pod) {
  {
    std::lock_guard lock(mu_);
    pod_ = std::move(pod);
    wake_ = true;
  }
  cv_.notify_all();
}

void PodWorker::Deleted() {
  {
    std::lock_guard lock(mu_);
    deleted_ = true;
    wake_ = true;
  }
  cv_.notify_all();
}

void PodWorker::Evict(const std::string& message) {
  {
    std::lock_guard lock(mu_);
    if (evict_message_.empty()) {
      evict_message_ = message;
    }
    wake_ = true;
  }
  cv_.notify_all();
}

bool PodWorker::evicted() const {
  std::lock_guard lock(mu_);
  return !evict_message_.empty();
}

void PodWorker::Detach() {
  stop_ = true;
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void PodWorker::Shutdown() {
  Detach();
  try {
    Terminate(10, false);
  } catch (const std::exception& e) {
    log::Warn("pod {}/{}: stop at shutdown: {}", ns_, name_, e.what());
  }
}

json PodWorker::CurrentPod() const {
  std::lock_guard lock(mu_);
  return *pod_;
}

std::string PodWorker::PodIp() const {
  std::lock_guard lock(mu_);
  return pod_ip_;
}

std::string PodWorker::Netns() const {
  return ctx_.paths.Netns(uid_);
}

std::string PodWorker::LogPath(const std::string& name, int attempt) const {
  return ctx_.paths.PodLogDir(ns_, name_, uid_) + "/" + name + "/" + std::to_string(attempt) +
         ".log";
}

std::optional<PodWorker::Running> PodWorker::Find(const std::string& container) const {
  std::lock_guard lock(mu_);
  std::string name = container;
  if (name.empty()) {
    auto cs = Containers(*pod_, "containers");
    if (cs.empty()) {
      return std::nullopt;
    }
    name = cs[0].value("name", "");
  }
  auto it = published_.find(name);
  if (it == published_.end()) {
    return std::nullopt;
  }
  Running r = it->second;
  r.pid = ReadRun(r.dir).pid;
  return r;
}

void PodWorker::Publish() {
  std::map<std::string, Running> out;
  for (const auto& [name, rec] : recs_) {
    if (rec.attempt < 0) {
      continue;
    }
    Running r;
    r.id = ContainerId(uid_, name, rec.attempt);
    r.dir = ctx_.paths.ContainerDir(uid_, name, rec.attempt);
    r.log_path = LogPath(name, rec.attempt);
    if (rec.attempt > 0) {
      r.previous_log_path = LogPath(name, rec.attempt - 1);
    }
    r.running = rec.running;
    out[name] = r;
  }
  std::lock_guard lock(mu_);
  published_ = std::move(out);
}

void PodWorker::Loop() {
  try {
    Adopt();
  } catch (const std::exception& e) {
    log::Warn("pod {}/{}: adopt: {}", ns_, name_, e.what());
  }
  while (!stop_ && !finished_) {
    try {
      Sync();
    } catch (const std::exception& e) {
      log::Warn("pod {}/{}: {}", ns_, name_, e.what());
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return wake_ || stop_.load(); });
    wake_ = false;
  }
}

// After a kubelet restart: find the containers this pod already has and take
// them over as they are.
void PodWorker::Adopt() {
  json pod = CurrentPod();
  std::string dir = ctx_.paths.PodDir(uid_);
  if (!fs::Exists(dir)) {
    return;
  }
  try {
    json sb = json::parse(fs::ReadFile(dir + "/sandbox.json"));
    pod_ip_ = sb.value("ip", "");
    sandbox_ready_ = !pod_ip_.empty() && fs::Exists(ctx_.paths.Netns(uid_));
    start_time_ = sb.value("startTime", "");
  } catch (const std::exception&) {
  }
  for (const char* field : {"initContainers", "containers"}) {
    for (const auto& c : Containers(pod, field)) {
      std::string name = c.value("name", "");
      std::string base = dir + "/containers/" + name;
      int attempt = -1;
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
        attempt = std::max(attempt, std::atoi(e.path().filename().c_str()));
      }
      if (attempt < 0) {
        continue;
      }
      ContainerRec& rec = recs_[name];
      rec.attempt = attempt;
      std::string cdir = ctx_.paths.ContainerDir(uid_, name, attempt);
      try {
        json meta = json::parse(fs::ReadFile(cdir + "/meta.json"));
        rec.image_ref = meta.value("image", "");
        rec.image_id = meta.value("imageID", "");
        rec.started_at = meta.value("startedAt", "");
        ParseTime(rec.started_at, &rec.running_since);
      } catch (const std::exception&) {
      }
      ContainerRun run = ReadRun(cdir);
      rec.running = run.created && !run.exited && ProcessAlive(run.pid);
      rec.started = rec.running;
      rec.ready = false;
      if (!rec.running && run.exited) {
        rec.current_terminated = {
            {"exitCode", run.exit_code},
            {"reason", run.exit_code == 0 ? "Completed" : "Error"},
            {"startedAt", rec.started_at},
            {"finishedAt", run.finished_at},
            {"containerID", ctx_.runtime->name() + "://" + ContainerId(uid_, name, attempt)}};
      }
    }
  }
  volumes_ready_ = false;
}

void PodWorker::EnsureSandbox() {
  if (sandbox_ready_) {
    return;
  }
  json pod = CurrentPod();
  std::string netns = ctx_.paths.Netns(uid_);
  fs::MakeDirs(ctx_.paths.PodDir(uid_));
  CreateNetns(netns);
  json ports = json::array();
  for (const auto& c : Containers(pod, "containers")) {
    for (const auto& p : c.value("ports", json::array())) {
      if (p.value("hostPort", 0) > 0) {
        std::string proto = p.value("protocol", std::string("TCP"));
        std::transform(proto.begin(), proto.end(), proto.begin(), ::tolower);
        ports.push_back({{"hostPort", p["hostPort"]},
                         {"containerPort", p.value("containerPort", 0)},
                         {"protocol", proto}});
      }
    }
  }
  NetworkStatus ns = ctx_.network->Add(uid_, netns, ns_, name_, ports);
  std::string now = FormatTime(Now());
  {
    std::lock_guard lock(mu_);
    pod_ip_ = ns.ip;
    if (start_time_.empty()) {
      start_time_ = now;
    }
  }
  fs::WriteFileAtomic(ctx_.paths.PodDir(uid_) + "/sandbox.json",
                      json{{"ip", ns.ip}, {"startTime", start_time_}}.dump());
  // The pod's /etc files, shared by its containers.
  std::string etc = ctx_.paths.PodDir(uid_) + "/etc";
  fs::MakeDirs(etc);
  std::string hostname = GetString(pod, "spec.hostname", name_);
  std::string subdomain = GetString(pod, "spec.subdomain");
  std::string hosts =
      "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
      "ip6-loopback\n"
      "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-"
      "allrouters\n";
  hosts += ns.ip + "\t" +
           (subdomain.empty()
                ? hostname
                : hostname + "." + subdomain + "." + ns_ + ".svc.cluster.local\t" + hostname) +
           "\n";
  for (const auto& ha : pod["spec"].value("hostAliases", json::array())) {
    hosts += "\n# Entries added by HostAliases.\n" + ha.value("ip", "");
    for (const auto& h : ha.value("hostnames", json::array())) {
      hosts += "\t" + h.get<std::string>();
    }
    hosts += "\n";
  }
  fs::WriteFileAtomic(etc + "/hosts", hosts);
  fs::WriteFileAtomic(etc + "/hostname", hostname + "\n");
  std::string policy = GetString(pod, "spec.dnsPolicy", "ClusterFirst");
  std::string resolv;
  if (policy == "Default") {
    try {
      resolv = fs::ReadFile("/etc/resolv.conf");
    } catch (const std::exception&) {
    }
  } else if (policy != "None") {
    resolv = "search " + ns_ +
             ".svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions "
             "ndots:5\n";
  }
  if (const json* cfg = ::minik::Find(pod, "spec.dnsConfig"); cfg && cfg->is_object()) {
    std::string extra;
    for (const auto& n : cfg->value("nameservers", json::array())) {
      extra += "nameserver " + n.get<std::string>() + "\n";
    }
    std::string search;
    for (const auto& s : cfg->value("searches", json::array())) {
      search += " " + s.get<std::string>();
    }
    if (!search.empty()) {
      extra += "search" + search + "\n";
    }
    resolv += extra;
  }
  fs::WriteFileAtomic(etc + "/resolv.conf", resolv);
  sandbox_ready_ = true;
  ctx_.events->Event(pod, "Normal", "SandboxReady", "Pod sandbox ready with IP " + ns.ip);
}

void PodWorker::TeardownSandbox() {
  std::string netns = ctx_.paths.Netns(uid_);
  try {
    ctx_.network->Del(uid_, netns, ns_, name_);
  } catch (const std::exception& e) {
    log::Warn("pod {}/{}: network teardown: {}", ns_, name_, e.what());
  }
  DeleteNetns(netns);
  sandbox_ready_ = false;
}

// The variables Docker links made popular and the kubelet still sets: for the
// API server's Service always, and for every Service of the pod's namespace
// unless enableServiceLinks is false. WEB_SERVICE_HOST=10.96.0.20,
// WEB_SERVICE_PORT=80, WEB_PORT=tcp://10.96.0.20:80, WEB_PORT_80_TCP_ADDR=...
std::vector<std::pair<std::string, std::string>> PodWorker::ServiceLinkEnv(const json& pod) const {
  std::vector<std::pair<std::string, std::string>> out;
  if (!ctx_.services) {
    return out;
  }
  bool links = pod["spec"].value("enableServiceLinks", true);
  std::vector<client::Object> services;
  for (const auto& s : ctx_.services->List()) {
    std::string ns = GetString(*s, "metadata.namespace"), name = GetString(*s, "metadata.name");
    if ((links && ns == ns_) || (ns == "default" && name == "kubernetes")) {
      services.push_back(s);
    }
  }
  std::sort(services.begin(), services.end(), [](const auto& a, const auto& b) {
    return GetString(*a, "metadata.name") < GetString(*b, "metadata.name");
  });
  for (const auto& s : services) {
    std::string ip = GetString(*s, "spec.clusterIP");
    const json ports = (*s)["spec"].value("ports", json::array());
    if (ip.empty() || ip == "None" || ports.empty()) {
      continue;
    }
    std::string name = GetString(*s, "metadata.name");
    std::transform(name.begin(), name.end(), name.begin(),
                   [](char ch) { return ch == '-' ? '_' : static_cast<char>(::toupper(ch)); });
    auto port_of = [](const json& p) { return std::to_string(p.value("port", 0)); };
    auto proto_of = [](const json& p) {
      std::string proto = p.value("protocol", std::string("TCP"));
      std::transform(proto.begin(), proto.end(), proto.begin(), ::tolower);
      return proto;
    };
    out.emplace_back(name + "_SERVICE_HOST", ip);
    out.emplace_back(name + "_SERVICE_PORT", port_of(ports[0]));
    for (const auto& p : ports) {
      std::string pn = p.value("name", "");
      if (!pn.empty()) {
        std::transform(pn.begin(), pn.end(), pn.begin(),
                       [](char ch) { return ch == '-' ? '_' : static_cast<char>(::toupper(ch)); });
        out.emplace_back(name + "_SERVICE_PORT_" + pn, port_of(p));
      }
    }
    out.emplace_back(name + "_PORT", proto_of(ports[0]) + "://" + ip + ":" + port_of(ports[0]));
    for (const auto& p : ports) {
      std::string proto = proto_of(p), upper = proto;
      std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
      std::string prefix = name + "_PORT_" + port_of(p) + "_" + upper;
      out.emplace_back(prefix, proto + "://" + ip + ":" + port_of(p));
      out.emplace_back(prefix + "_PROTO", proto);
      out.emplace_back(prefix + "_PORT", port_of(p));
      out.emplace_back(prefix + "_ADDR", ip);
    }
  }
  return out;
}

std::vector<std::string> PodWorker::EnvFor(const json& c, const images::ImageConfig& image) {
  json pod = CurrentPod();
  std::vector<std::pair<std::string, std::string>> env;
  auto set = [&](const std::string& k, const std::string& v) {
    for (auto& e : env) {
      if (e.first == k) {
        e.second = v;
        return;
      }
    }
    env.emplace_back(k, v);
  };
  for (const auto& e : image.env) {
    auto eq = e.find('=');
    set(e.substr(0, eq), eq == std::string::npos ? "" : e.substr(eq + 1));
  }
  bool has_path = false;
  for (auto& e : env) {
    has_path = has_path || e.first == "PATH";
  }
  if (!has_path) {
    set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  set("HOSTNAME", GetString(pod, "spec.hostname", name_));
  for (const auto& [k, v] : ServiceLinkEnv(pod)) {
    set(k, v);
  }
  for (const auto& from : c.value("envFrom", json::array())) {
    std::string prefix = from.value("prefix", "");
    if (from.contains("configMapRef")) {
      std::string n = from["configMapRef"].value("name", "");
      try {
        json cm = ctx_.client->Get("/api/v1/namespaces/" + ns_ + "/configmaps/" + n);
        const json data = cm.value("data", json::object());
        for (auto& [k, v] : data.items()) {
          set(prefix + k, v.get<std::string>());
        }
      } catch (const client::ApiError& e) {
        if (!(e.code == 404 && from["configMapRef"].value("optional", false))) {
          throw Error("configmap \"" + n + "\" not found");
        }
      }
    } else if (from.contains("secretRef")) {
      std::string n = from["secretRef"].value("name", "");
      try {
        json s = ctx_.client->Get("/api/v1/namespaces/" + ns_ + "/secrets/" + n);
        const json data = s.value("data", json::object());
        for (auto& [k, v] : data.items()) {
          set(prefix + k, base64::DecodeLenient(v.get<std::string>()).value_or(""));
        }
      } catch (const client::ApiError& e) {
        if (!(e.code == 404 && from["secretRef"].value("optional", false))) {
          throw Error("secret \"" + n + "\" not found");
        }
      }
    }
  }
  for (const auto& e : c.value("env", json::array())) {
    std::string name = e.value("name", "");
    if (e.contains("value")) {
      set(name, ExpandVars(e.value("value", ""), env));
    } else if (e.contains("valueFrom")) {
      const json& vf = e["valueFrom"];
      if (vf.contains("fieldRef")) {
        json p = pod;
        p["status"]["podIP"] = PodIp();
        p["status"]["hostIP"] = ctx_.node_ip;
        set(name, FieldRefValue(p, vf["fieldRef"].value("fieldPath", "")));
      } else if (vf.contains("configMapKeyRef") || vf.contains("secretKeyRef")) {
        bool secret = vf.contains("secretKeyRef");
        const json& ref = secret ? vf["secretKeyRef"] : vf["configMapKeyRef"];
        std::string n = ref.value("name", ""), key = ref.value("key", "");
        try {
          json obj = ctx_.client->Get("/api/v1/namespaces/" + ns_ +
                                      (secret ? "/secrets/" : "/configmaps/") + n);
          const json* v = ::minik::Find(obj, "data");
          if (!v || !v->contains(key)) {
            if (ref.value("optional", false)) {
              continue;
            }
            throw Error("couldn't find key " + key + " in " + (secret ? "Secret " : "ConfigMap ") +
                        ns_ + "/" + n);
          }
          std::string val = (*v)[key].get<std::string>();
          set(name, secret ? base64::DecodeLenient(val).value_or("") : val);
        } catch (const client::ApiError& err) {
          if (!(err.code == 404 && ref.value("optional", false))) {
            throw Error(std::string(secret ? "secret" : "configmap") + " \"" + n + "\" not found");
          }
        }
      } else if (vf.contains("resourceFieldRef")) {
        std::string res = vf["resourceFieldRef"].value("resource", "");
        auto dot = res.find('.');
        const json* q =
            dot == std::string::npos
                ? nullptr
                : ::minik::Find(c, "resources." + res.substr(0, dot) + "." + res.substr(dot + 1));
        int64_t milli = q ? api::QuantityMilli(*q) : 0;
        bool cpu = res.find("cpu") != std::string::npos;
        set(name, std::to_string(cpu ? std::max<int64_t>(1, (milli + 999) / 1000) : milli / 1000));
      }
    }
  }
  std::vector<std::string> out;
  for (auto& [k, v] : env) {
    out.push_back(k + "=" + v);
  }
  return out;
}

bool PodWorker::StartContainer(const json& c, ContainerRec& rec, bool init) {
  json pod = CurrentPod();
  std::string name = c.value("name", "");
  std::string image_ref = c.value("image", "");
  // Image.
  std::optional<images::Image> image;
  try {
    std::string policy = c.value("imagePullPolicy", "IfNotPresent");
    image = ctx_.images->Find(image_ref);
    if (!image || (policy == "Always" && !images::IsBuiltin(*image))) {
      if (policy == "Never") {
        rec.waiting_reason = "ErrImageNeverPull";
        rec.waiting_message =
            "Container image \"" + image_ref + "\" is not present with pull policy of Never";
        return false;
      }
      std::optional<images::RegistryAuth> auth;
      for (const auto& ps : pod["spec"].value("imagePullSecrets", json::array())) {
        try {
          json secret =
              ctx_.client->Get("/api/v1/namespaces/" + ns_ + "/secrets/" + ps.value("name", ""));
          const json* d = ::minik::Find(secret, "data");
          std::string key =
              d && d->contains(".dockerconfigjson") ? ".dockerconfigjson" : ".dockercfg";
          if (!d || !d->contains(key)) {
            continue;
          }
          json cfg = json::parse(base64::DecodeLenient((*d)[key].get<std::string>()).value_or(""));
          if (key == ".dockercfg") {
            cfg = {{"auths", cfg}};
          }
          auth = images::AuthFromDockerConfig(cfg, image_ref);
          if (auth) {
            break;
          }
        } catch (const std::exception&) {
          // A missing or malformed pull secret is skipped, as the kubelet does.
        }
      }
      ctx_.events->Event(pod, "Normal", "Pulling", "Pulling image \"" + image_ref + "\"");
      auto t0 = std::chrono::steady_clock::now();
      try {
        image = ctx_.images->Pull(image_ref, auth);
      } catch (const std::exception& e) {
        // Offline with the image at hand (built-in images like busybox are):
        // use it rather than fail, and say so.
        if (!image) {
          throw;
        }
        ctx_.events->Event(
            pod, "Warning", "PullFailedUsingLocal",
            std::string("Pulling failed (") + e.what() + "); using the image present on the node");
      }
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      char buf[128];
      snprintf(buf, sizeof(buf), "%.3fs", secs);
      ctx_.events->Event(pod, "Normal", "Pulled",
                         "Successfully pulled image \"" + image_ref + "\" in " + buf);
    } else {
      ctx_.events->Event(pod, "Normal", "Pulled",
                         "Container image \"" + image_ref + "\" already present on machine");
    }
  } catch (const std::exception& e) {
    bool was = rec.waiting_reason == "ErrImagePull" || rec.waiting_reason == "ImagePullBackOff";
    rec.waiting_reason = was ? "ImagePullBackOff" : "ErrImagePull";
    rec.waiting_message =
        was ? "Back-off pulling image \"" + image_ref + "\": " + e.what() : e.what();
    rec.backoff_seconds =
        std::min(kMaxBackoffSeconds, rec.backoff_seconds ? rec.backoff_seconds * 2 : 10);
    rec.next_start = Now() + std::chrono::seconds(rec.backoff_seconds);
    ctx_.events->Event(pod, "Warning", "Failed",
                       "Failed to pull image \"" + image_ref + "\": " + e.what());
    return false;
  }
  int attempt = rec.attempt + 1;
  std::string dir = ctx_.paths.ContainerDir(uid_, name, attempt);
  std::string id = ContainerId(uid_, name, attempt);
  try {
    fs::MakeDirs(dir);
    MountRootfs(dir, image->layers);
    ContainerPlan plan;
    plan.id = id;
    plan.dir = dir;
    plan.log_path = LogPath(name, attempt);
    fs::MakeDirs(plan.log_path.substr(0, plan.log_path.rfind('/')));
    plan.env = EnvFor(c, image->config);
    std::vector<std::pair<std::string, std::string>> envpairs;
    for (const auto& e : plan.env) {
      auto eq = e.find('=');
      envpairs.emplace_back(e.substr(0, eq), e.substr(eq + 1));
    }
    for (auto& a : MergeCommand(c, image->config)) {
      plan.args.push_back(ExpandVars(a, envpairs));
    }
    if (plan.args.empty()) {
      throw Error(
          "no command specified: the image has no entrypoint or cmd and the container none");
    }
    plan.cwd = c.value("workingDir", image->config.working_dir);
    const json psc = pod["spec"].value("securityContext", json::object());
    const json sc = c.value("securityContext", json::object());
    ResolveUser(dir + "/rootfs", image->config.user, &plan.uid, &plan.gid);
    if (psc.contains("runAsUser"))
      plan.uid = psc["runAsUser"].get<int>();
    if (psc.contains("runAsGroup"))
      plan.gid = psc["runAsGroup"].get<int>();
    if (sc.contains("runAsUser"))
      plan.uid = sc["runAsUser"].get<int>();
    if (sc.contains("runAsGroup"))
      plan.gid = sc["runAsGroup"].get<int>();
    for (const auto& g : psc.value("supplementalGroups", json::array())) {
      plan.extra_gids.push_back(g.get<int>());
    }
    if (psc.contains("fsGroup")) {
      plan.extra_gids.push_back(psc["fsGroup"].get<int>());
    }
    bool non_root = sc.value("runAsNonRoot", psc.value("runAsNonRoot", false));
    if (non_root && plan.uid == 0) {
      throw Error("container has runAsNonRoot and image will run as root (pod: \"" + name_ + "_" +
                  ns_ + "(" + uid_ + ")\", container: " + name + ")");
    }
    plan.privileged = sc.value("privileged", false);
    plan.read_only_rootfs = sc.value("readOnlyRootFilesystem", false);
    for (const auto& a : sc.value("capabilities", json::object()).value("add", json::array())) {
      plan.caps_add.push_back(a.get<std::string>());
    }
    for (const auto& d : sc.value("capabilities", json::object()).value("drop", json::array())) {
      plan.caps_drop.push_back(d.get<std::string>());
    }
    const json res = c.value("resources", json::object());
    if (const json* m = ::minik::Find(res, "limits.memory"))
      plan.memory_limit = api::QuantityMilli(*m) / 1000;
    if (const json* l = ::minik::Find(res, "limits.cpu"))
      plan.cpu_limit_milli = api::QuantityMilli(*l);
    if (const json* r = ::minik::Find(res, "requests.cpu"))
      plan.cpu_request_milli = api::QuantityMilli(*r);
    plan.cgroup_path = ctx_.paths.PodCgroup(uid_) + "/" + id;
    plan.hostname = GetString(pod, "spec.hostname", name_);
    plan.netns = ctx_.paths.Netns(uid_);
    plan.stdin_open = c.value("stdin", false);
    plan.tty = c.value("tty", false);
    std::string etc = ctx_.paths.PodDir(uid_) + "/etc";
    plan.mounts.push_back({etc + "/hosts", "/etc/hosts", false, "bind", {}});
    plan.mounts.push_back({etc + "/hostname", "/etc/hostname", false, "bind", {}});
    plan.mounts.push_back({etc + "/resolv.conf", "/etc/resolv.conf", false, "bind", {}});
    std::string term = dir + "/termination-log";
    if (!fs::Exists(term)) {
      fs::WriteFileAtomic(term, "", 0666);
    }
    plan.mounts.push_back({term,
                           c.value("terminationMessagePath", std::string("/dev/termination-log")),
                           false,
                           "bind",
                           {}});
    for (const auto& vm : c.value("volumeMounts", json::array())) {
      std::string vname = vm.value("name", "");
      auto it = volume_paths_.find(vname);
      if (it == volume_paths_.end()) {
        throw Error("volume \"" + vname + "\" is not prepared");
      }
      std::string sub = vm.value("subPath", "");
      if (vm.contains("subPathExpr")) {
        sub = ExpandVars(vm.value("subPathExpr", ""), envpairs);
      }
      Mount m;
      m.source = ResolveSubPath(it->second, sub);
      m.destination = vm.value("mountPath", "");
      m.read_only = vm.value("readOnly", false) || volume_read_only_[vname];
      plan.mounts.push_back(m);
    }
    WriteBundle(plan);
    // Clear what a previous attempt left in this directory.
    unlink((dir + "/shim.status").c_str());
    unlink((dir + "/exit.json").c_str());
    exec::Spawn shim;
    shim.argv = {ctx_.minik_binary,
                 "shim",
                 "--id",
                 id,
                 "--state-dir",
                 dir,
                 "--log",
                 plan.log_path,
                 "--pid-file",
                 dir + "/container.pid"};
    if (plan.stdin_open) {
      shim.argv.push_back("--stdin");
    }
    shim.argv.push_back("--");
    for (const auto& a : ctx_.runtime->CreateArgv(id, dir, dir + "/container.pid")) {
      shim.argv.push_back(a);
    }
    shim.log_file = dir + "/shim.log";
    shim.new_session = true;
    exec::StartProcess(shim);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    ContainerRun run;
    for (;;) {
      run = ReadRun(dir);
      if (run.created || !run.error.empty()) {
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw Error("the container was not created within 30s (see " + dir + "/shim.log)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!run.error.empty()) {
      throw Error(ctx_.runtime->name() + " create " + id + ": " + run.error);
    }
    ctx_.runtime->Start(id);
  } catch (const std::exception& e) {
    rec.attempt = attempt;  // the attempt counts, as a failed start in Kubernetes does
    rec.running = false;
    rec.waiting_reason = "CreateContainerError";
    if (std::string(e.what()).find("runAsNonRoot") != std::string::npos ||
        std::string(e.what()).find("not found") != std::string::npos ||
        std::string(e.what()).find("couldn't find key") != std::string::npos) {
      rec.waiting_reason = "CreateContainerConfigError";
    }
    rec.waiting_message = e.what();
    rec.backoff_seconds =
        std::min(kMaxBackoffSeconds, rec.backoff_seconds ? rec.backoff_seconds * 2 : 10);
    rec.next_start = Now() + std::chrono::seconds(rec.backoff_seconds);
    ctx_.events->Event(pod, "Warning", "Failed", std::string("Error: ") + e.what());
    try {
      ctx_.runtime->Delete(id, true);
    } catch (const std::exception&) {
    }
    UnmountRootfs(dir);
    return false;
  }
  std::string now = FormatTime(Now());
  rec.attempt = attempt;
  rec.running = true;
  rec.started = !c.contains("startupProbe");
  rec.ready = false;
  rec.image_ref = image_ref;
  rec.image_id = image->digests.empty() ? image->id : image->digests[0];
  rec.started_at = now;
  rec.running_since = Now();
  rec.waiting_reason.clear();
  rec.waiting_message.clear();
  rec.current_terminated = nullptr;
  rec.liveness_failures = rec.readiness_failures = rec.readiness_successes = rec.startup_failures =
      0;
  auto delay = [&](const char* probe) {
    return Now() +
           std::chrono::seconds(c.contains(probe) ? c[probe].value("initialDelaySeconds", 0) : 0);
  };
  rec.next_liveness = delay("livenessProbe");
  rec.next_readiness = delay("readinessProbe");
  rec.next_startup = delay("startupProbe");
  fs::WriteFileAtomic(
      dir + "/meta.json",
      json{{"image", image_ref}, {"imageID", rec.image_id}, {"startedAt", now}}.dump());
  ctx_.events->Event(pod, "Normal", attempt == 0 ? "Created" : "Created",
                     "Created container " + name);
  ctx_.events->Event(pod, "Normal", "Started", "Started container " + name);
  // postStart runs after the container started; a failure kills it.
  if (const json* ps = ::minik::Find(c, "lifecycle.postStart")) {
    std::string out;
    if (!Handler(*ps, rec, 30, &out)) {
      ctx_.events->Event(pod, "Warning", "FailedPostStartHook", "PostStartHook failed: " + out);
      StopContainer(c, rec, 0);
    }
  }
  return true;
}

void PodWorker::StopContainer(const json& c, ContainerRec& rec, int64_t grace) {
  if (rec.attempt < 0) {
    return;
  }
  std::string name = c.value("name", "");
  std::string id = ContainerId(uid_, name, rec.attempt);
  std::string dir = ctx_.paths.ContainerDir(uid_, name, rec.attempt);
  ContainerRun run = ReadRun(dir);
  bool alive = run.created && !run.exited && ProcessAlive(run.pid);
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(std::max<int64_t>(grace, 0));
  if (alive) {
    if (const json* pre = ::minik::Find(c, "lifecycle.preStop"); pre && grace > 0) {
      std::string out;
      if (!Handler(*pre, rec, static_cast<int>(grace), &out)) {
        ctx_.events->Event(CurrentPod(), "Warning", "FailedPreStopHook",
                           "PreStopHook failed: " + out);
      }
    }
    try {
      ctx_.runtime->Kill(id, grace > 0 ? SIGTERM : SIGKILL, true);
    } catch (const std::exception&) {
    }
    while (std::chrono::steady_clock::now() < deadline && !ReadRun(dir).exited) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!ReadRun(dir).exited) {
      try {
        ctx_.runtime->Kill(id, SIGKILL, true);
      } catch (const std::exception&) {
      }
      auto kill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (std::chrono::steady_clock::now() < kill_deadline && !ReadRun(dir).exited) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  try {
    ctx_.runtime->Delete(id, true);
  } catch (const std::exception&) {
  }
  try {
    UnmountRootfs(dir);
  } catch (const std::exception& e) {
    log::Warn("{}: {}", id, e.what());
  }
  Observe(c, rec);
}

// Reads what happened to a running container and records its termination.
void PodWorker::Observe(const json& c, ContainerRec& rec) {
  if (rec.attempt < 0 || !rec.running) {
    return;
  }
  std::string name = c.value("name", "");
  std::string dir = ctx_.paths.ContainerDir(uid_, name, rec.attempt);
  ContainerRun run = ReadRun(dir);
  bool alive = run.created && !run.exited && ProcessAlive(run.pid);
  if (alive) {
    return;
  }
  if (!run.exited) {
    // The shim is gone without a word (killed): the container is lost.
    run.exit_code = 137;
    run.finished_at = FormatTime(Now());
  }
  rec.running = false;
  rec.ready = false;
  std::string reason = run.exit_code == 0 ? "Completed" : "Error";
  // OOM kills leave a signal 9 and the memory cgroup's oom counter; 137 with a memory limit is the
  // usual sign.
  if (run.signal == 9 &&
      (OomKills(ctx_.paths.PodCgroup(uid_) + "/" + ContainerId(uid_, name, rec.attempt)) > 0 ||
       ::minik::Find(c, "resources.limits.memory"))) {
    reason = "OOMKilled";
  }
  json term = {
      {"exitCode", run.exit_code},
      {"reason", reason},
      {"startedAt", rec.started_at},
      {"finishedAt", run.finished_at.empty() ? FormatTime(Now()) : run.finished_at},
      {"containerID", ctx_.runtime->name() + "://" + ContainerId(uid_, name, rec.attempt)}};
  if (run.signal) {
    term["signal"] = run.signal;
  }
  try {
    std::string msg = fs::ReadFile(
        dir + "/upper" + c.value("terminationMessagePath", std::string("/dev/termination-log")));
    if (!msg.empty()) {
      term["message"] = msg.substr(0, 4096);
    }
  } catch (const std::exception&) {
    try {
      std::string msg = fs::ReadFile(dir + "/termination-log");
      if (!msg.empty()) {
        term["message"] = msg.substr(0, 4096);
      }
    } catch (const std::exception&) {
    }
  }
  rec.current_terminated = term;
  // CrashLoopBackOff: 10 s doubling to 5 min, reset after 10 min of running.
  auto ran = std::chrono::duration_cast<std::chrono::seconds>(Now() - rec.running_since).count();
  if (ran > kBackoffResetSeconds) {
    rec.backoff_seconds = 0;
  }
  rec.backoff_seconds =
      std::min(kMaxBackoffSeconds, rec.backoff_seconds ? rec.backoff_seconds * 2 : 10);
  rec.next_start = Now() + std::chrono::seconds(rec.backoff_seconds);
  try {
    ctx_.runtime->Delete(ContainerId(uid_, name, rec.attempt), true);
  } catch (const std::exception&) {
  }
  try {
    UnmountRootfs(dir);
  } catch (const std::exception&) {
  }
}

bool PodWorker::Handler(const json& h, const ContainerRec& rec, int timeout, std::string* out) {
  std::string ip = PodIp();
  if (h.contains("exec")) {
    // Runs the command in the container with the runtime's exec.
    std::string name;
    for (const auto& [n, r] : recs_) {
      if (&r == &rec) {
        name = n;
      }
    }
    std::string dir = ctx_.paths.ContainerDir(uid_, name, rec.attempt);
    json config;
    try {
      config = json::parse(fs::ReadFile(dir + "/config.json"));
    } catch (const std::exception& e) {
      *out = e.what();
      return false;
    }
    json process = config["process"];
    process["args"] = h["exec"].value("command", json::array());
    process["terminal"] = false;
    std::string pj = dir + "/probe-" + std::to_string(::getpid()) + "-" + RandomSuffix(6) + ".json";
    fs::WriteFileAtomic(pj, process.dump());
    exec::Command cmd;
    cmd.argv = {"timeout", std::to_string(std::max(1, timeout))};
    for (const auto& a : ctx_.runtime->ExecArgv(ContainerId(uid_, name, rec.attempt), pj, false)) {
      cmd.argv.push_back(a);
    }
    exec::Result r = exec::Run(cmd);
    unlink(pj.c_str());
    *out = r.out + r.err;
    return r.ok();
  }
  if (h.contains("httpGet")) {
    const json& g = h["httpGet"];
    std::string host = g.value("host", ip);
    json port = g.value("port", json(80));
    if (port.is_string()) {
      json pod = CurrentPod();
      for (const auto& c : Containers(pod, "containers")) {
        for (const auto& p : c.value("ports", json::array())) {
          if (p.value("name", "") == port.get<std::string>()) {
            port = p.value("containerPort", 80);
          }
        }
      }
    }
    std::string scheme = g.value("scheme", std::string("HTTP"));
    std::string url = (scheme == "HTTPS" ? "https://" : "http://") + host + ":" +
                      std::to_string(port.is_number() ? port.get<int>() : 80);
    http::ClientOptions o;
    o.timeout_ms = timeout * 1000L;
    o.connect_timeout_ms = timeout * 1000L;
    http::Client client(url, o);
    http::ClientResponse r = client.Do("GET", g.value("path", std::string("/")), "", "", "*/*");
    *out = r.status ? "HTTP probe failed with statuscode: " + std::to_string(r.status) : r.error;
    return r.status >= 200 && r.status < 400;
  }
  if (h.contains("tcpSocket")) {
    json port = h["tcpSocket"].value("port", json(0));
    int p = port.is_number() ? port.get<int>() : 0;
    std::string host = h["tcpSocket"].value("host", ip);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(p));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    bool ok = rc == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      if (poll(&pfd, 1, timeout * 1000) > 0) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        ok = err == 0;
      }
    }
    close(fd);
    *out = ok ? "" : "dial tcp " + host + ":" + std::to_string(p) + ": connect: connection refused";
    return ok;
  }
  if (h.contains("sleep")) {
    std::this_thread::sleep_for(std::chrono::seconds(h["sleep"].value("seconds", 0)));
    return true;
  }
  *out = "no handler";
  return false;
}

void PodWorker::RunProbes(const json& c, ContainerRec& rec) {
  SystemTime now = Now();
  auto period = [&](const json& p) { return std::chrono::seconds(p.value("periodSeconds", 10)); };
  json pod = CurrentPod();
  std::string name = c.value("name", "");
  if (!rec.started && c.contains("startupProbe")) {
    const json& p = c["startupProbe"];
    if (now >= rec.next_startup) {
      std::string out;
      if (Handler(p, rec, p.value("timeoutSeconds", 1), &out)) {
        rec.started = true;
      } else if (++rec.startup_failures >= p.value("failureThreshold", 3)) {
        ctx_.events->Event(pod, "Warning", "Unhealthy", "Startup probe failed: " + out);
        ctx_.events->Event(pod, "Normal", "Killing",
                           "Container " + name + " failed startup probe, will be restarted");
        StopContainer(c, rec, pod["spec"].value("terminationGracePeriodSeconds", 30));
        return;
      }
      rec.next_startup = now + period(p);
    }
    return;  // liveness and readiness wait for startup
  }
  rec.started = true;
  if (c.contains("livenessProbe") && now >= rec.next_liveness) {
    const json& p = c["livenessProbe"];
    std::string out;
    if (Handler(p, rec, p.value("timeoutSeconds", 1), &out)) {
      rec.liveness_failures = 0;
    } else {
      ctx_.events->Event(pod, "Warning", "Unhealthy", "Liveness probe failed: " + out);
      if (++rec.liveness_failures >= p.value("failureThreshold", 3)) {
        ctx_.events->Event(pod, "Normal", "Killing",
                           "Container " + name + " failed liveness probe, will be restarted");
        StopContainer(c, rec,
                      p.value("terminationGracePeriodSeconds",
                              pod["spec"].value("terminationGracePeriodSeconds", 30)));
        rec.backoff_seconds = 0;
        rec.next_start = Now();
        return;
      }
    }
    rec.next_liveness = now + period(p);
  }
  if (!c.contains("readinessProbe")) {
    rec.ready = true;
  } else if (now >= rec.next_readiness) {
    const json& p = c["readinessProbe"];
    std::string out;
    if (Handler(p, rec, p.value("timeoutSeconds", 1), &out)) {
      rec.readiness_failures = 0;
      if (++rec.readiness_successes >= p.value("successThreshold", 1)) {
        rec.ready = true;
      }
    } else {
      rec.readiness_successes = 0;
      if (++rec.readiness_failures >= p.value("failureThreshold", 3) || !rec.ready) {
        if (rec.ready || rec.readiness_failures == 1) {
          ctx_.events->Event(pod, "Warning", "Unhealthy", "Readiness probe failed: " + out);
        }
        rec.ready = false;
      }
    }
    rec.next_readiness = now + period(p);
  }
}

void PodWorker::Terminate(int64_t grace, bool delete_object) {
  json pod = CurrentPod();
  // App containers first (in parallel in Kubernetes; in order here), then init ones.
  std::vector<std::thread> stops;
  for (const char* field : {"containers", "initContainers"}) {
    for (const auto& c : Containers(pod, field)) {
      auto it = recs_.find(c.value("name", ""));
      if (it != recs_.end()) {
        stops.emplace_back([this, c, &rec = it->second, grace] {
          try {
            StopContainer(c, rec, grace);
          } catch (const std::exception& e) {
            log::Warn("pod {}/{}: stop {}: {}", ns_, name_, c.value("name", ""), e.what());
          }
        });
      }
    }
  }
  for (auto& t : stops) {
    t.join();
  }
  TeardownSandbox();
  CleanupVolumes(ctx_.paths.PodDir(uid_));
  RemoveCgroupTree(ctx_.paths.PodCgroup(uid_));
  if (delete_object) {
    WriteStatus();
    try {
      ctx_.client->Delete("/api/v1/namespaces/" + ns_ + "/pods/" + name_,
                          {{"gracePeriodSeconds", 0}, {"preconditions", {{"uid", uid_}}}});
    } catch (const client::ApiError& e) {
      if (e.code != 404 && e.code != 409) {
        throw;
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(ctx_.paths.PodDir(uid_), ec);
    std::filesystem::remove_all(ctx_.paths.PodLogDir(ns_, name_, uid_), ec);
    finished_ = true;
  }
}

void PodWorker::Sync() {
  json pod = CurrentPod();
  bool deleted;
  {
    std::lock_guard lock(mu_);
    deleted = deleted_;
  }
  if (deleted || ::minik::Find(pod, "metadata.deletionTimestamp")) {
    int64_t grace = pod["metadata"].value("deletionGracePeriodSeconds",
                                          pod["spec"].value("terminationGracePeriodSeconds", 30));
    if (!deleted) {
      ctx_.events->Event(
          pod, "Normal", "Killing",
          "Stopping container " + Containers(pod, "containers")[0].value("name", ""));
    }
    Terminate(grace, !deleted);
    if (deleted) {
      std::error_code ec;
      std::filesystem::remove_all(ctx_.paths.PodDir(uid_), ec);
      finished_ = true;
    }
    return;
  }
  std::string phase = GetString(pod, "status.phase");
  std::string evict_message;
  {
    std::lock_guard lock(mu_);
    evict_message = evict_message_;
  }
  if (!evict_message.empty() && phase != "Succeeded" && phase != "Failed") {
    if (!evicted_) {
      // Hard eviction: no grace period. Logs stay for `kubectl logs`.
      ctx_.events->Event(pod, "Warning", "Evicted", evict_message);
      Terminate(0, false);
      evicted_ = true;
    }
    WriteStatus();
    return;
  }
  if (phase == "Succeeded" || phase == "Failed") {
    // Finished pods keep their status and logs; their sandbox goes.
    if (sandbox_ready_) {
      TeardownSandbox();
      CleanupVolumes(ctx_.paths.PodDir(uid_));
    }
    return;
  }
  EnsureSandbox();
  // Volumes, refreshed now and then so configMap and secret changes reach the files.
  if (!volumes_ready_ || Now() - volumes_refreshed_ > std::chrono::seconds(10)) {
    try {
      auto vols = PrepareVolumes({ctx_.client, ctx_.paths.PodDir(uid_), &tokens_}, pod);
      std::lock_guard lock(mu_);
      volume_paths_.clear();
      for (auto& [n, v] : vols) {
        volume_paths_[n] = v.path;
        volume_read_only_[n] = v.read_only;
      }
      volumes_ready_ = true;
      volume_error_.clear();
      volumes_refreshed_ = Now();
    } catch (const std::exception& e) {
      if (volume_error_ != e.what()) {
        ctx_.events->Event(pod, "Warning", "FailedMount",
                           std::string("MountVolume.SetUp failed for ") + e.what());
      }
      volume_error_ = e.what();
      if (!volumes_ready_) {
        WriteStatus();
        return;
      }
    }
  }
  std::string policy = RestartPolicy(pod);
  SystemTime now = Now();
  // Init containers, in order; restartable ones (sidecars) keep running.
  bool init_done = true;
  for (const auto& c : Containers(pod, "initContainers")) {
    std::string name = c.value("name", "");
    ContainerRec& rec = recs_[name];
    Observe(c, rec);
    bool sidecar = c.value("restartPolicy", "") == "Always";
    if (rec.running) {
      if (sidecar) {
        RunProbes(c, rec);
        if (rec.started) {
          continue;
        }
      }
      init_done = false;
      break;
    }
    if (!rec.current_terminated.is_null() && rec.current_terminated.value("exitCode", 1) == 0 &&
        !sidecar) {
      continue;
    }
    bool failed = !rec.current_terminated.is_null();
    if (failed && policy == "Never" && !sidecar) {
      init_done = false;
      break;  // the pod fails (see WriteStatus)
    }
    if (now >= rec.next_start || rec.attempt < 0) {
      if (failed) {
        rec.last_terminated = rec.current_terminated;
      }
      StartContainer(c, rec, true);
    } else {
      rec.waiting_reason = "CrashLoopBackOff";
      rec.waiting_message = "back-off " + std::to_string(rec.backoff_seconds) +
                            "s restarting failed container=" + name + " pod=" + name_ + "_" + ns_ +
                            "(" + uid_ + ")";
    }
    init_done = false;
    break;
  }
  if (init_done) {
    for (const auto& c : Containers(pod, "containers")) {
      std::string name = c.value("name", "");
      ContainerRec& rec = recs_[name];
      Observe(c, rec);
      if (rec.running) {
        RunProbes(c, rec);
        continue;
      }
      if (rec.attempt >= 0 && !rec.current_terminated.is_null()) {
        int code = rec.current_terminated.value("exitCode", 0);
        bool restart = policy == "Always" || (policy == "OnFailure" && code != 0);
        if (!restart) {
          continue;
        }
        if (now < rec.next_start) {
          rec.waiting_reason = "CrashLoopBackOff";
          rec.waiting_message = "back-off " + std::to_string(rec.backoff_seconds) +
                                "s restarting failed container=" + name + " pod=" + name_ + "_" +
                                ns_ + "(" + uid_ + ")";
          if (rec.backoff_seconds >= 20) {
            ctx_.events->Event(pod, "Warning", "BackOff",
                               "Back-off restarting failed container " + name + " in pod " + name_ +
                                   "_" + ns_ + "(" + uid_ + ")");
          }
          continue;
        }
        rec.last_terminated = rec.current_terminated;
        rec.current_terminated = nullptr;
      } else if (rec.attempt >= 0 && now < rec.next_start) {
        continue;  // a failed start waits for its backoff
      }
      if (rec.waiting_reason.empty()) {
        rec.waiting_reason = "ContainerCreating";
      }
      StartContainer(c, rec, false);
    }
  }
  WriteStatus();
}

void PodWorker::WriteStatus() {
  json pod = CurrentPod();
  std::string policy = RestartPolicy(pod);
  std::string now = FormatTime(Now());
  auto status_of = [&](const json& c, bool init) {
    std::string name = c.value("name", "");
    const ContainerRec& rec = recs_[name];
    json s = {{"name", name},
              {"image", c.value("image", "")},
              {"imageID", rec.image_id},
              {"ready", rec.running && rec.ready && rec.started},
              {"restartCount", std::max(0, rec.attempt)},
              {"started", rec.running && rec.started}};
    if (rec.attempt >= 0 && (rec.running || !rec.current_terminated.is_null())) {
      s["containerID"] = ctx_.runtime->name() + "://" + ContainerId(uid_, name, rec.attempt);
    }
    if (rec.running) {
      s["state"] = {{"running", {{"startedAt", rec.started_at}}}};
    } else if (!rec.current_terminated.is_null() && rec.waiting_reason != "CrashLoopBackOff") {
      s["state"] = {{"terminated", rec.current_terminated}};
    } else {
      json w = {{"reason", rec.waiting_reason.empty()
                               ? (init ? "PodInitializing" : "ContainerCreating")
                               : rec.waiting_reason}};
      if (!rec.waiting_message.empty()) {
        w["message"] = rec.waiting_message;
      }
      s["state"] = {{"waiting", w}};
    }
    json last = rec.waiting_reason == "CrashLoopBackOff" && !rec.current_terminated.is_null()
                    ? rec.current_terminated
                    : rec.last_terminated;
    s["lastState"] = last.is_null() ? json::object() : json{{"terminated", last}};
    if (init) {
      s.erase("started");
    }
    return s;
  };
  json statuses = json::array(), init_statuses = json::array();
  bool all_ready = true, any_running = false, all_terminated = true, any_failed = false;
  for (const auto& c : Containers(pod, "containers")) {
    json s = status_of(c, false);
    all_ready = all_ready && s["ready"].get<bool>();
    const ContainerRec& rec = recs_[c.value("name", "")];
    any_running = any_running || rec.running;
    bool terminated_for_good =
        !rec.running && !rec.current_terminated.is_null() &&
        !(policy == "Always" ||
          (policy == "OnFailure" && rec.current_terminated.value("exitCode", 0) != 0));
    all_terminated = all_terminated && terminated_for_good;
    any_failed =
        any_failed || (terminated_for_good && rec.current_terminated.value("exitCode", 0) != 0);
    statuses.push_back(s);
  }
  bool initialized = true, init_failed = false;
  for (const auto& c : Containers(pod, "initContainers")) {
    json s = status_of(c, true);
    const ContainerRec& rec = recs_[c.value("name", "")];
    bool sidecar = c.value("restartPolicy", "") == "Always";
    bool done = sidecar ? rec.running && rec.started
                        : !rec.current_terminated.is_null() &&
                              rec.current_terminated.value("exitCode", 1) == 0;
    initialized = initialized && done;
    if (!sidecar && !rec.current_terminated.is_null() &&
        rec.current_terminated.value("exitCode", 0) != 0 && policy == "Never") {
      init_failed = true;
    }
    init_statuses.push_back(s);
  }
  std::string phase = "Pending";
  if (init_failed) {
    phase = "Failed";
  } else if (initialized && all_terminated && !statuses.empty()) {
    phase = any_failed ? "Failed" : "Succeeded";
  } else if (initialized && any_running) {
    phase = "Running";
  }
  json old_conds = pod["status"].value("conditions", json::array());
  auto cond = [&](const std::string& type, bool value, const std::string& reason = "") {
    std::string status = value ? "True" : "False";
    std::string ltt = now;
    for (const auto& o : old_conds) {
      if (o.value("type", "") == type && o.value("status", "") == status) {
        ltt = o.value("lastTransitionTime", now);
      }
    }
    json c = {{"type", type},
              {"status", status},
              {"lastProbeTime", nullptr},
              {"lastTransitionTime", ltt}};
    if (!reason.empty() && !value) {
      c["reason"] = reason;
    }
    return c;
  };
  bool finished = phase == "Succeeded" || phase == "Failed";
  bool ready = !finished && initialized && all_ready;
  json conditions = json::array(
      {cond("PodReadyToStartContainers", sandbox_ready_ || finished),
       cond("Initialized", initialized, "ContainersNotInitialized"),
       cond("Ready", ready, finished ? "PodCompleted" : "ContainersNotReady"),
       cond("ContainersReady", ready, finished ? "PodCompleted" : "ContainersNotReady")});
  for (const auto& o : old_conds) {
    if (o.value("type", "") == "PodScheduled") {
      conditions.push_back(o);
    }
  }
  // Readiness gates: Ready needs every gate's condition True as well.
  for (const auto& g : pod["spec"].value("readinessGates", json::array())) {
    std::string t = g.value("conditionType", "");
    bool ok = false;
    for (const auto& o : old_conds) {
      if (o.value("type", "") == t) {
        ok = o.value("status", "") == "True";
        conditions.push_back(o);
      }
    }
    if (!ok) {
      for (auto& c : conditions) {
        if (c["type"] == "Ready" && c["status"] == "True") {
          c = cond("Ready", false, "ReadinessGatesNotReady");
        }
      }
    }
  }
  std::string evict_message;
  {
    std::lock_guard lock(mu_);
    evict_message = evict_message_;
  }
  if (evicted_) {
    phase = "Failed";
    for (auto& c : conditions) {
      if (c["type"] == "Ready" || c["type"] == "ContainersReady") {
        c = cond(c["type"].get<std::string>(), false, "PodFailed");
      }
    }
    json d = cond("DisruptionTarget", true);
    d["reason"] = "TerminationByKubelet";
    d["message"] = evict_message;
    conditions.push_back(d);
  }
  std::string ip = PodIp();
  json status = {{"phase", phase},
                 {"conditions", conditions},
                 {"hostIP", ctx_.node_ip},
                 {"hostIPs", {{{"ip", ctx_.node_ip}}}},
                 {"containerStatuses", statuses},
                 {"qosClass", GetString(pod, "status.qosClass", "BestEffort")}};
  if (!ip.empty()) {
    status["podIP"] = ip;
    status["podIPs"] = {{{"ip", ip}}};
  }
  if (!start_time_.empty()) {
    status["startTime"] = start_time_;
  }
  if (!init_statuses.empty()) {
    status["initContainerStatuses"] = init_statuses;
  }
  if (evicted_) {
    status["reason"] = "Evicted";
    status["message"] = evict_message;
  }
  Publish();
  if (status == last_status_) {
    return;
  }
  try {
    ctx_.client->Patch("/api/v1/namespaces/" + ns_ + "/pods/" + name_ + "/status",
                       {{"metadata", {{"uid", uid_}}}, {"status", status}});
    last_status_ = status;
  } catch (const client::ApiError& e) {
    if (e.code == 404) {
      Deleted();
    } else {
      throw;
    }
  }
}

}  // namespace minik::kubelet
