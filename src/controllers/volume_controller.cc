// The PersistentVolume controller and minik's storage provisioner, as
// minikube's storage-provisioner does it: a default StorageClass `standard`;
// every claim of that class gets a hostPath volume under the node's data
// directory, bound to it; volumes whose claim is gone are Released, and
// deleted with their data when their reclaim policy is Delete. Claims of other
// classes (or of none) bind to a matching Available volume.

#include <sys/stat.h>

#include "api/quantity.h"
#include "common/fs.h"
#include "common/log.h"
#include "controllers/core.h"
#include "controllers/util.h"

namespace minik::controllers {
namespace {

constexpr const char* kProvisioner = "minik.dev/hostpath";
constexpr const char* kDefaultClass = "standard";

bool Contains(const json& list, const json& v) {
  return list.is_array() && std::find(list.begin(), list.end(), v) != list.end();
}

class VolumeController : public QueueController {
 public:
  explicit VolumeController(Context ctx) : QueueController("persistentvolume", ctx) {
    claims_ = ctx_.informers->For(client::resources::kPersistentVolumeClaims);
    volumes_ = ctx_.informers->For(client::resources::kPersistentVolumes);
    classes_ = ctx_.informers->For(client::resources::kStorageClasses);
    claims_->AddHandlers(
        {[this](const client::Object& c) { Enqueue("claim/" + client::KeyOf(*c)); },
         [this](const client::Object&, const client::Object& c) {
           Enqueue("claim/" + client::KeyOf(*c));
         },
         [this](const client::Object& c) {
           // Its volume is released.
           std::string v = GetString(*c, "spec.volumeName");
           if (!v.empty()) {
             Enqueue("volume/" + v);
           }
         }});
    volumes_->AddHandlers(
        {[this](const client::Object& v) { Enqueue("volume/" + client::KeyOf(*v)); },
         [this](const client::Object&, const client::Object& v) {
           Enqueue("volume/" + client::KeyOf(*v));
           // A volume that became Available may bind a waiting claim.
           for (const auto& c : claims_->List()) {
             if (GetString(*c, "status.phase") == "Pending") {
               Enqueue("claim/" + client::KeyOf(*c));
             }
           }
         },
         nullptr});
  }

  void Start() override {
    EnsureDefaultClass();
    QueueController::Start();
  }

 private:
  void EnsureDefaultClass() {
    try {
      ctx_.client->Post(
          "/apis/storage.k8s.io/v1/storageclasses",
          {{"apiVersion", "storage.k8s.io/v1"},
           {"kind", "StorageClass"},
           {"metadata",
            {{"name", kDefaultClass},
             {"annotations", {{"storageclass.kubernetes.io/is-default-class", "true"}}},
             {"labels", {{"addonmanager.kubernetes.io/mode", "EnsureExists"}}}}},
           {"provisioner", kProvisioner},
           {"reclaimPolicy", "Delete"},
           {"volumeBindingMode", "Immediate"}});
    } catch (const client::ApiError& e) {
      if (e.code != 409) {
        log::Warn("default storage class: {}", e.what());
      }
    }
  }

  void Sync(const std::string& key) override {
    if (key.rfind("claim/", 0) == 0) {
      SyncClaim(key.substr(6));
    } else {
      SyncVolume(key.substr(7));
    }
  }

  void SyncClaim(const std::string& key) {
    client::Object obj = claims_->Get(key);
    if (!obj || Find(*obj, "metadata.deletionTimestamp")) {
      return;
    }
    const json& pvc = *obj;
    std::string ns = GetString(pvc, "metadata.namespace");
    std::string name = GetString(pvc, "metadata.name");
    std::string uid = GetString(pvc, "metadata.uid");
    std::string volume = GetString(pvc, "spec.volumeName");
    if (!volume.empty()) {
      client::Object pv = volumes_->Get(volume);
      if (pv && GetString(*pv, "spec.claimRef.uid") == uid) {
        if (GetString(pvc, "status.phase") != "Bound") {
          MarkClaimBound(pvc, *pv);
        }
        return;
      }
      if (!pv) {
        Phase(pvc, "Lost");
        return;
      }
    }
    std::string cls = GetString(pvc, "spec.storageClassName");
    int64_t want = api::QuantityMilli(Find(pvc, "spec.resources.requests.storage")
                                          ? *Find(pvc, "spec.resources.requests.storage")
                                          : json());
    // An Available volume that fits: class, size, access modes, volume mode.
    const json* best = nullptr;
    client::Object best_obj;
    int64_t best_size = INT64_MAX;
    for (const auto& v : volumes_->List()) {
      const json& pv = *v;
      if (GetString(pv, "status.phase") != "Available" || Find(pv, "spec.claimRef")) {
        // A volume pre-bound to this claim by the user is fine.
        if (!(GetString(pv, "spec.claimRef.name") == name &&
              GetString(pv, "spec.claimRef.namespace") == ns &&
              GetString(pv, "spec.claimRef.uid", uid) == uid &&
              GetString(pv, "status.phase") != "Released")) {
          continue;
        }
      }
      if (GetString(pv, "spec.storageClassName") != cls) {
        continue;
      }
      if (GetString(pv, "spec.volumeMode", "Filesystem") !=
          GetString(pvc, "spec.volumeMode", "Filesystem")) {
        continue;
      }
      int64_t size = api::QuantityMilli(
          Find(pv, "spec.capacity.storage") ? *Find(pv, "spec.capacity.storage") : json());
      if (size < want) {
        continue;
      }
      bool modes = true;
      for (const auto& m : pvc["spec"].value("accessModes", json::array())) {
        modes = modes && Contains(pv["spec"].value("accessModes", json::array()), m);
      }
      if (!modes) {
        continue;
      }
      if (size < best_size) {
        best_size = size;
        best_obj = v;
        best = &*v;
      }
    }
    if (best) {
      Bind(pvc, *best);
      return;
    }
    client::Object sc = cls.empty() ? nullptr : classes_->Get(cls);
    if (sc && GetString(*sc, "provisioner") == kProvisioner) {
      Provision(pvc, *sc);
      return;
    }
    if (GetString(pvc, "status.phase").empty()) {
      Phase(pvc, "Pending");
    }
    ctx_.events->Event(
        pvc, "Normal", "FailedBinding",
        "no persistent volumes available for this claim and no storage class is set");
  }

  void Provision(const json& pvc, const json& sc) {
    std::string uid = GetString(pvc, "metadata.uid");
    std::string pv_name = "pvc-" + uid;
    std::string dir = ctx_.node_data_dir + "/volumes/" + pv_name;
    fs::MakeDirs(dir, 0777);
    ::chmod(dir.c_str(), 0777);
    json size = Find(pvc, "spec.resources.requests.storage")
                    ? *Find(pvc, "spec.resources.requests.storage")
                    : json("1Gi");
    json pv = {{"apiVersion", "v1"},
               {"kind", "PersistentVolume"},
               {"metadata",
                {{"name", pv_name},
                 {"annotations",
                  {{"pv.kubernetes.io/provisioned-by", kProvisioner},
                   {"hostPathProvisionerIdentity", "minik"}}}}},
               {"spec",
                {{"capacity", {{"storage", size}}},
                 {"accessModes", pvc["spec"].value("accessModes", json::array({"ReadWriteOnce"}))},
                 {"persistentVolumeReclaimPolicy", GetString(sc, "reclaimPolicy", "Delete")},
                 {"storageClassName", GetString(sc, "metadata.name")},
                 {"volumeMode", GetString(pvc, "spec.volumeMode", "Filesystem")},
                 {"hostPath", {{"path", dir}, {"type", ""}}},
                 {"claimRef",
                  {{"kind", "PersistentVolumeClaim"},
                   {"apiVersion", "v1"},
                   {"namespace", GetString(pvc, "metadata.namespace")},
                   {"name", GetString(pvc, "metadata.name")},
                   {"uid", uid},
                   {"resourceVersion", GetString(pvc, "metadata.resourceVersion")}}}}}};
    try {
      json created = ctx_.client->Post("/api/v1/persistentvolumes", pv);
      ctx_.events->Event(pvc, "Normal", "ProvisioningSucceeded",
                         "Successfully provisioned volume " + pv_name);
      Bind(pvc, created);
    } catch (const client::ApiError& e) {
      if (e.code != 409) {
        ctx_.events->Event(pvc, "Warning", "ProvisioningFailed", e.what());
        throw;
      }
    }
  }

  void Bind(const json& pvc, const json& pv) {
    std::string pv_name = GetString(pv, "metadata.name");
    json claim_ref = {{"kind", "PersistentVolumeClaim"},
                      {"apiVersion", "v1"},
                      {"namespace", GetString(pvc, "metadata.namespace")},
                      {"name", GetString(pvc, "metadata.name")},
                      {"uid", GetString(pvc, "metadata.uid")},
                      {"resourceVersion", GetString(pvc, "metadata.resourceVersion")}};
    json bound_pv =
        ctx_.client->Patch("/api/v1/persistentvolumes/" + pv_name,
                           {{"metadata",
                             {{"annotations", {{"pv.kubernetes.io/bound-by-controller", "yes"}}},
                              {"resourceVersion", GetString(pv, "metadata.resourceVersion")}}},
                            {"spec", {{"claimRef", claim_ref}}}});
    ctx_.client->Patch("/api/v1/persistentvolumes/" + pv_name + "/status",
                       {{"status", {{"phase", "Bound"}}}});
    std::string path = "/api/v1/namespaces/" + GetString(pvc, "metadata.namespace") +
                       "/persistentvolumeclaims/" + GetString(pvc, "metadata.name");
    ctx_.client->Patch(path, {{"metadata",
                               {{"annotations",
                                 {{"pv.kubernetes.io/bind-completed", "yes"},
                                  {"pv.kubernetes.io/bound-by-controller", "yes"}}}}},
                              {"spec", {{"volumeName", pv_name}}}});
    MarkClaimBound(pvc, bound_pv);
  }

  void MarkClaimBound(const json& pvc, const json& pv) {
    std::string path = "/api/v1/namespaces/" + GetString(pvc, "metadata.namespace") +
                       "/persistentvolumeclaims/" + GetString(pvc, "metadata.name") + "/status";
    ctx_.client->Patch(path, {{"status",
                               {{"phase", "Bound"},
                                {"accessModes", pv["spec"].value("accessModes", json::array())},
                                {"capacity", pv["spec"].value("capacity", json::object())}}}});
  }

  void Phase(const json& pvc, const std::string& phase) {
    if (GetString(pvc, "status.phase") == phase) {
      return;
    }
    ctx_.client->Patch("/api/v1/namespaces/" + GetString(pvc, "metadata.namespace") +
                           "/persistentvolumeclaims/" + GetString(pvc, "metadata.name") + "/status",
                       {{"status", {{"phase", phase}}}});
  }

  void SyncVolume(const std::string& name) {
    client::Object obj = volumes_->Get(name);
    if (!obj || Find(*obj, "metadata.deletionTimestamp")) {
      return;
    }
    const json& pv = *obj;
    std::string phase = GetString(pv, "status.phase");
    const json* ref = Find(pv, "spec.claimRef");
    if (!ref) {
      if (phase != "Available") {
        ctx_.client->Patch("/api/v1/persistentvolumes/" + name + "/status",
                           {{"status", {{"phase", "Available"}}}});
      }
      return;
    }
    std::string uid = ref->value("uid", "");
    client::Object claim = claims_->Get(ref->value("namespace", "") + "/" + ref->value("name", ""));
    bool claim_gone = !claim || (!uid.empty() && GetString(*claim, "metadata.uid") != uid);
    if (!claim_gone) {
      if (phase != "Bound" && !uid.empty() && GetString(*claim, "spec.volumeName") == name) {
        ctx_.client->Patch("/api/v1/persistentvolumes/" + name + "/status",
                           {{"status", {{"phase", "Bound"}}}});
      }
      return;
    }
    if (uid.empty()) {
      return;  // pre-bound by the user to a claim that does not exist yet
    }
    if (phase == "Bound" || phase == "Available" || phase.empty()) {
      ctx_.client->Patch("/api/v1/persistentvolumes/" + name + "/status",
                         {{"status", {{"phase", "Released"}}}});
      ctx_.events->Event(pv, "Normal", "VolumeReleased", "the claim of this volume is gone");
    }
    if (GetString(pv, "spec.persistentVolumeReclaimPolicy") == "Delete") {
      const json* ann = Find(pv, "metadata.annotations");
      bool ours = ann && ann->value("pv.kubernetes.io/provisioned-by", "") == kProvisioner;
      std::string dir = GetString(pv, "spec.hostPath.path");
      if (ours && !dir.empty() && dir.rfind(ctx_.node_data_dir + "/volumes/", 0) == 0) {
        fs::RemoveAll(dir);
      }
      try {
        ctx_.client->Delete("/api/v1/persistentvolumes/" + name);
      } catch (const client::ApiError& e) {
        if (e.code != 404) {
          throw;
        }
      }
    }
  }

  std::shared_ptr<client::Informer> claims_, volumes_, classes_;
};

}  // namespace

std::unique_ptr<Controller> NewPersistentVolumeController(Context ctx) {
  return std::make_unique<VolumeController>(std::move(ctx));
}

}  // namespace minik::controllers
