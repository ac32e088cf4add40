// The garbage collector. It watches every resource that can be listed and
// watched, keeps the graph of owner references (by uid), and:
// - deletes an object when all of its owners are gone (background
//   propagation), or when the owners left are being deleted in the foreground
//   (then the dependent goes in the foreground too, so blocking dependents of
//   dependents are waited for);
// - removes the `foregroundDeletion` finalizer from an owner once no dependent
//   with blockOwnerDeletion is left, and the `orphan` finalizer once every
//   dependent's reference to it is removed.

#include <map>
#include <set>

#include "common/log.h"
#include "controllers/core.h"
#include "controllers/util.h"

namespace minik::controllers {
namespace {

struct Node {
  client::ResourcePath resource;
  std::string ns, name, uid, api_version, kind;
  json owners;  // ownerReferences
  bool deleting = false;
  std::vector<std::string> finalizers;
};

bool HasFinalizer(const Node& n, const std::string& f) {
  return std::find(n.finalizers.begin(), n.finalizers.end(), f) != n.finalizers.end();
}

class GarbageCollector : public QueueController {
 public:
  explicit GarbageCollector(Context ctx) : QueueController("garbagecollector", ctx, 2) {
    // Every listable, watchable resource except events is part of the graph.
    json groups = ctx_.client->Get("/apis");
    std::vector<std::string> gvs = {"/api/v1"};
    for (const auto& g : groups.value("groups", json::array())) {
      gvs.push_back("/apis/" + GetString(g, "preferredVersion.groupVersion"));
    }
    for (const auto& gv : gvs) {
      json list = ctx_.client->Get(gv);
      std::string api_version = list.value("groupVersion", "");
      for (const auto& r : list.value("resources", json::array())) {
        std::string plural = r.value("name", "");
        json verbs = r.value("verbs", json::array());
        auto has = [&](const char* v) {
          return std::find(verbs.begin(), verbs.end(), v) != verbs.end();
        };
        if (plural.find('/') != std::string::npos || !has("watch") || !has("list") ||
            !has("delete") || plural == "events") {
          continue;
        }
        client::ResourcePath rp{gv, plural, r.value("namespaced", true)};
        kinds_[api_version + "/" + r.value("kind", "")] = rp;
        auto inf = ctx_.informers->For(rp);
        inf->AddHandlers(
            {[this, rp](const client::Object& o) { Observe(rp, *o, false); },
             [this, rp](const client::Object&, const client::Object& o) { Observe(rp, *o, false); },
             [this, rp](const client::Object& o) { Observe(rp, *o, true); }});
      }
    }
  }

 private:
  // Records an object in the graph and queues whatever its change affects.
  void Observe(const client::ResourcePath& rp, const json& obj, bool deleted) {
    std::string uid = GetString(obj, "metadata.uid");
    std::vector<std::string> touched;
    {
      std::lock_guard lock(mu_);
      if (auto old = nodes_.find(uid); old != nodes_.end()) {
        Unlink(old->second);
      }
      if (deleted) {
        nodes_.erase(uid);
        // Its dependents may be orphans now.
        auto it = dependents_.find(uid);
        if (it != dependents_.end()) {
          touched.assign(it->second.begin(), it->second.end());
        }
      } else {
        Node n;
        n.resource = rp;
        n.ns = GetString(obj, "metadata.namespace");
        n.name = GetString(obj, "metadata.name");
        n.uid = uid;
        n.api_version = obj.value("apiVersion", "");
        n.kind = obj.value("kind", "");
        const json* refs = Find(obj, "metadata.ownerReferences");
        n.owners = refs && refs->is_array() ? *refs : json::array();
        n.deleting = Find(obj, "metadata.deletionTimestamp") != nullptr;
        if (const json* f = Find(obj, "metadata.finalizers"); f && f->is_array()) {
          for (const auto& x : *f) {
            n.finalizers.push_back(x.get<std::string>());
          }
        }
        for (const auto& r : n.owners) {
          dependents_[r.value("uid", "")].insert(uid);
        }
        bool owner_work =
            n.deleting && (HasFinalizer(n, "foregroundDeletion") || HasFinalizer(n, "orphan"));
        nodes_[uid] = std::move(n);
        if (!nodes_[uid].owners.empty() || owner_work) {
          touched.push_back(uid);
        }
        if (nodes_[uid].deleting) {
          // Owners waiting for this dependent (foreground) look again.
          for (const auto& r : nodes_[uid].owners) {
            touched.push_back(r.value("uid", ""));
          }
        }
      }
      if (deleted) {
        // Owners waiting for this dependent (foreground) look again.
        const json* refs = Find(obj, "metadata.ownerReferences");
        if (refs && refs->is_array()) {
          for (const auto& r : *refs) {
            touched.push_back(r.value("uid", ""));
          }
        }
      }
    }
    for (const auto& t : touched) {
      Enqueue(t);
    }
  }

  // Removes the edges from a node to its owners. Called with mu_ held.
  void Unlink(const Node& n) {
    for (const auto& r : n.owners) {
      auto it = dependents_.find(r.value("uid", ""));
      if (it != dependents_.end()) {
        it->second.erase(n.uid);
        if (it->second.empty()) {
          dependents_.erase(it);
        }
      }
    }
  }

  std::optional<Node> Lookup(const std::string& uid) {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(uid);
    if (it == nodes_.end()) {
      return std::nullopt;
    }
    return it->second;
  }

  std::vector<Node> Dependents(const std::string& uid) {
    std::lock_guard lock(mu_);
    std::vector<Node> out;
    auto it = dependents_.find(uid);
    if (it == dependents_.end()) {
      return out;
    }
    for (const auto& d : it->second) {
      auto n = nodes_.find(d);
      if (n == nodes_.end()) {
        continue;
      }
      for (const auto& r : n->second.owners) {
        if (r.value("uid", "") == uid) {
          out.push_back(n->second);
          break;
        }
      }
    }
    return out;
  }

  // Whether the owner a reference names exists: known in the graph, or (for a
  // kind we do not watch) found by asking the API server.
  enum class OwnerState { kGone, kSolid, kForegroundDeleting };
  OwnerState Owner(const json& ref, const std::string& ns) {
    auto n = Lookup(ref.value("uid", ""));
    if (n) {
      return n->deleting && HasFinalizer(*n, "foregroundDeletion") ? OwnerState::kForegroundDeleting
                                                                   : OwnerState::kSolid;
    }
    auto k = kinds_.find(ref.value("apiVersion", "") + "/" + ref.value("kind", ""));
    if (k != kinds_.end() && ctx_.informers->For(k->second)->synced()) {
      return OwnerState::kGone;
    }
    // Unknown kind: ask.
    if (k == kinds_.end()) {
      return OwnerState::kSolid;  // cannot tell; never delete on a guess
    }
    try {
      json o = ctx_.client->Get(k->second.Item(ns, ref.value("name", "")));
      return GetString(o, "metadata.uid") == ref.value("uid", "") ? OwnerState::kSolid
                                                                  : OwnerState::kGone;
    } catch (const client::ApiError& e) {
      if (e.code == 404) {
        return OwnerState::kGone;
      }
      throw;
    }
  }

  std::string Path(const Node& n) { return n.resource.Item(n.ns, n.name); }

  void RemoveFinalizer(const Node& n, const std::string& f) {
    json kept = json::array();
    for (const auto& x : n.finalizers) {
      if (x != f) {
        kept.push_back(x);
      }
    }
    try {
      ctx_.client->Patch(
          Path(n), {{"metadata", {{"finalizers", kept.empty() ? json() : kept}, {"uid", n.uid}}}});
    } catch (const client::ApiError& e) {
      if (e.code != 404 && e.code != 409) {
        throw;
      }
    }
  }

  void Sync(const std::string& uid) override {
    auto n = Lookup(uid);
    if (!n) {
      return;
    }
    // Owner side: finish foreground and orphan deletions.
    if (n->deleting && HasFinalizer(*n, "orphan")) {
      for (const auto& d : Dependents(uid)) {
        json refs = json::array();
        for (const auto& r : d.owners) {
          if (r.value("uid", "") != uid) {
            refs.push_back(r);
          }
        }
        try {
          ctx_.client->Patch(
              Path(d),
              {{"metadata", {{"ownerReferences", refs.empty() ? json() : refs}, {"uid", d.uid}}}});
        } catch (const client::ApiError& e) {
          if (e.code != 404) {
            throw;
          }
        }
      }
      RemoveFinalizer(*n, "orphan");
      return;
    }
    if (n->deleting && HasFinalizer(*n, "foregroundDeletion")) {
      bool blocked = false;
      for (const auto& d : Dependents(uid)) {
        bool blocks = false;
        for (const auto& r : d.owners) {
          if (r.value("uid", "") == uid && r.value("blockOwnerDeletion", false)) {
            blocks = true;
          }
        }
        if (!d.deleting) {
          Delete(d, blocks && !Dependents(d.uid).empty() ? "Foreground" : "Background");
          if (blocks && !Dependents(d.uid).empty()) {
            blocked = true;
          }
        }
        if (blocks) {
          blocked = true;
        }
      }
      if (!blocked) {
        RemoveFinalizer(*n, "foregroundDeletion");
      } else {
        EnqueueAfter(uid, std::chrono::seconds(1));
      }
      return;
    }
    // Dependent side.
    if (n->owners.empty() || n->deleting) {
      return;
    }
    std::vector<json> solid, dangling, waiting;
    for (const auto& r : n->owners) {
      switch (Owner(r, n->ns)) {
        case OwnerState::kSolid:
          solid.push_back(r);
          break;
        case OwnerState::kGone:
          dangling.push_back(r);
          break;
        case OwnerState::kForegroundDeleting:
          waiting.push_back(r);
          break;
      }
    }
    if (!solid.empty()) {
      if (!dangling.empty() || !waiting.empty()) {
        // Keep the object; drop the references to owners that are going.
        json refs = json::array();
        for (const auto& r : solid) {
          refs.push_back(r);
        }
        try {
          ctx_.client->Patch(Path(*n),
                             {{"metadata", {{"ownerReferences", refs}, {"uid", n->uid}}}});
        } catch (const client::ApiError& e) {
          if (e.code != 404) {
            throw;
          }
        }
      }
      return;
    }
    Delete(*n, !waiting.empty() && !Dependents(uid).empty() ? "Foreground" : "Background");
  }

  void Delete(const Node& n, const std::string& policy) {
    try {
      ctx_.client->Delete(Path(n),
                          {{"propagationPolicy", policy}, {"preconditions", {{"uid", n.uid}}}});
      log::Debug("garbage collector: deleted {} {}/{} ({})", n.kind, n.ns, n.name, policy);
    } catch (const client::ApiError& e) {
      if (e.code != 404 && e.code != 409) {
        throw;
      }
    }
  }

  std::mutex mu_;  // shared by the informer threads and the workers
  std::map<std::string, Node> nodes_;
  std::map<std::string, std::set<std::string>> dependents_;  // owner uid -> dependent uids
  std::map<std::string, client::ResourcePath> kinds_;        // apiVersion/Kind -> resource
};

}  // namespace

std::unique_ptr<Controller> NewGarbageCollector(Context ctx) {
  return std::make_unique<GarbageCollector>(std::move(ctx));
}

}  // namespace minik::controllers
