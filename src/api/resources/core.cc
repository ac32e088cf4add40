// core/v1 kinds beyond the ones the control plane is built around:
// ReplicationControllers, PodTemplates, LimitRanges, and the resources that
// are not stored (Bindings, ComponentStatuses).

#include "api/registration.h"

namespace minik::api {

void RegisterCoreExtras(ResourceRegistry& reg) {
  {
    auto r = R("", "v1", "ReplicationController", "replicationcontrollers", true);
    r.short_names = {"rc"};
    r.categories = {"all"};
    r.subresources = {"scale", "status"};
    r.tracks_generation = true;
    r.reset_status_on_create = true;
    r.defaults = DefaultReplicationController;
    r.validate = ValidateReplicationController;
    r.columns = Cols(
        {NameCol(),
         Col("Desired", "integer", 0,
             "Replicas is the number of desired replicas. This is a pointer to distinguish between "
             "explicit zero and unspecified. Defaults to 1."),
         Col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
         Col("Ready", "integer", 0,
             "The number of ready replicas for this replication controller."),
         AgeCol(), Col("Containers", "string", 1, "Names of each container in the template."),
         Col("Images", "string", 1, "Images referenced by each container in the template."),
         Col("Selector", "string", 1,
             "Selector is a label query over pods that should match the Replicas count.")});
    r.cells = [](const json& rc) {
      auto [c, i] = ContainersImages(At(rc, "spec.template.spec"));
      return json{Name(rc),
                  Int(rc, "spec.replicas"),
                  Int(rc, "status.replicas"),
                  Int(rc, "status.readyReplicas"),
                  AgeOf(rc),
                  c,
                  i,
                  FormatLabels(At(rc, "spec.selector"))};
    };
    reg.Add(std::move(r));
  }
  {
    auto r = R("", "v1", "PodTemplate", "podtemplates", true);
    r.validate = ValidatePodTemplate;
    r.defaults = [](json& obj) {
      if (obj.contains("template") && obj["template"].is_object()) {
        DefaultPodTemplate(obj["template"]);
      }
    };
    r.columns =
        Cols({Col("Template", "string", 0, "Name of the template"),
              Col("Containers", "string", 0, "Names of each container in the template."),
              Col("Images", "string", 0, "Images referenced by each container in the template."),
              Col("Pod Labels", "string", 0, "The labels of the pod template.")});
    r.columns[0].format = "name";
    r.cells = [](const json& t) {
      auto [c, i] = ContainersImages(At(t, "template.spec"));
      return json{Name(t), c, i, FormatLabels(At(t, "template.metadata.labels"))};
    };
    reg.Add(std::move(r));
  }
  {
    auto r = R("", "v1", "LimitRange", "limitranges", true);
    r.short_names = {"limits"};
    r.columns = Cols({NameCol(), Col("Created At", "date", 0,
                                     "CreationTimestamp is a timestamp representing the server "
                                     "time when this object was created.")});
    r.cells = [](const json& o) { return json{Name(o), S(o, "metadata.creationTimestamp")}; };
    reg.Add(std::move(r));
  }
  {
    auto r = R("", "v1", "Binding", "bindings", true);
    r.virtual_resource = true;
    r.verbs = {"create"};
    reg.Add(std::move(r));
  }
  {
    auto r = R("", "v1", "ComponentStatus", "componentstatuses", false);
    r.short_names = {"cs"};
    r.virtual_resource = true;
    r.verbs = {"get", "list"};
    r.columns = Cols({NameCol(), Col("Status", "string", 0, "Status of the component conditions"),
                      Col("Message", "string", 0, "Message of the component conditions"),
                      Col("Error", "string", 0, "Error of the component conditions")});
    r.cells = [](const json& o) {
      std::string status = "Unknown", message, error;
      for (const auto& c : At(o, "conditions").is_array() ? At(o, "conditions") : json::array()) {
        if (c.value("type", "") == "Healthy") {
          status = c.value("status", "") == "True" ? "Healthy" : "Unhealthy";
          message = c.value("message", "");
          error = c.value("error", "");
        }
      }
      return json{Name(o), status, message, error};
    };
    reg.Add(std::move(r));
  }
}

}  // namespace minik::api
