"""What upstream's own test suites (kubectl's test/cmd, the Python client's
e2e tests) found minik doing differently from kube-apiserver v1.32, checked
with the real kubectl and Python client on a `minik start`ed cluster
(--no-kubelet: none of this needs containers; test_kubelet covers the rest).
"""

import base64
import json
import os
import signal
import ssl
import time
import unittest
import urllib.request

from cluster import Cluster, processes, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "discovery", "kube-apiserver-v1.32.json")
DOCS = os.path.join(HERE, "..", "..", "docs", "apiserver.md")

# Resources kube-apiserver v1.32 serves that minik does not, each named in
# docs/apiserver.md with the reason; subresources likewise ("pods/eviction").
NOT_SERVED = {
    "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    "admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
    "apiextensions.k8s.io/v1/customresourcedefinitions",
    "v1/pods/eviction",
    "v1/pods/ephemeralcontainers",
    "v1/pods/proxy",
    "v1/services/proxy",
    "v1/nodes/proxy",
}

RS = """apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: frontend
spec:
  replicas: 3
  selector:
    matchLabels: {tier: frontend}
  template:
    metadata:
      labels: {tier: frontend}
    spec:
      containers:
      - {name: php-redis, image: busybox}
"""

RC = """apiVersion: v1
kind: ReplicationController
metadata:
  name: frontend
spec:
  replicas: 3
  template:
    metadata:
      labels: {name: frontend}
    spec:
      containers:
      - {name: php-redis, image: busybox}
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: test-pod
  labels: {name: test-pod-label}
spec:
  containers:
  - {name: c, image: busybox}
"""


class FidelityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster("e2e-fidelity")
        out = cls.c.start("--no-kubelet").stdout
        assert "Done!" in out, out
        cls.client, cls.api = cls.c.python_client()

    @classmethod
    def tearDownClass(cls):
        cls.c.delete()

    def k(self, *args, **kw):
        return self.c.kubectl(*args, **kw)

    def raw(self, path, headers=None):
        """GET `path` with the admin certificate; (status, headers, bytes)."""
        cfg = json.loads(self.k("config", "view", "--raw", "--minify", "-o", "json").stdout)
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        d = self.c.dir
        files = {}
        for name, key in [("ca", "certificate-authority-data"), ("crt", "client-certificate-data"),
                          ("key", "client-key-data")]:
            files[name] = os.path.join(d, "raw." + name)
            with open(files[name], "wb") as f:
                f.write(base64.b64decode(cluster.get(key) or user.get(key)))
        ctx = ssl.create_default_context(cafile=files["ca"])
        ctx.load_cert_chain(files["crt"], files["key"])
        try:
            req = urllib.request.Request(cluster["server"] + path, headers=headers or {})
            with urllib.request.urlopen(req, context=ctx) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def apply(self, path, body, manager):
        """A server-side apply with the Python client (which has no method for it)."""
        query = [("fieldManager", manager)] if manager else []
        return self.api.call_api(path, "PATCH", query_params=query, body=json.dumps(body),
                                 header_params={"Content-Type": "application/apply-patch+yaml",
                                                "Accept": "application/json"},
                                 auth_settings=["BearerToken"], response_type="object")

    # 1. Secret stringData
    def test_secret_string_data_is_merged_into_data(self):
        v1 = self.client.CoreV1Api(self.api)
        b64 = lambda s: base64.b64encode(s.encode()).decode()
        self.k("apply", "-f", "-", input="apiVersion: v1\nkind: Secret\nmetadata: {name: sd}\n"
               "data: {token: " + b64("old") + ", keep: " + b64("kept") + "}\n"
               "stringData: {token: tok-123}\n")
        s = self.c.kubectl_json("get", "secret", "sd")
        self.assertEqual(s["data"], {"token": b64("tok-123"), "keep": b64("kept")})
        self.assertNotIn("stringData", s)
        # Update, merge patch and server-side apply merge it the same way.
        body = v1.read_namespaced_secret("sd", "default")
        body.string_data = {"token": "tok-456"}
        v1.replace_namespaced_secret("sd", "default", body)
        self.assertEqual(v1.read_namespaced_secret("sd", "default").data["token"], b64("tok-456"))
        v1.patch_namespaced_secret("sd", "default", {"stringData": {"extra": "x"}})
        data = v1.read_namespaced_secret("sd", "default").data
        self.assertEqual((data["extra"], data["keep"]), (b64("x"), b64("kept")))
        self.k("apply", "--server-side", "-f", "-", input="apiVersion: v1\nkind: Secret\n"
               "metadata: {name: ssa-secret}\nstringData: {password: pw}\n")
        s = self.c.kubectl_json("get", "secret", "ssa-secret")
        self.assertEqual(s["data"], {"password": b64("pw")})
        self.assertNotIn("stringData", s)

    # 2. System namespaces
    def test_system_namespaces_cannot_be_deleted(self):
        for ns in ["default", "kube-system", "kube-public"]:
            for extra in [[], ["--dry-run=server"]]:
                r = self.k("delete", "namespace", ns, *extra, check=False)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(f'namespaces "{ns}" is forbidden: this namespace may not be deleted',
                              r.stderr)
        self.k("create", "namespace", "doomed")
        r = self.k("delete", "namespace", "--all", "--wait=false", check=False)
        self.assertIn("this namespace may not be deleted", r.stderr)
        names = [n["metadata"]["name"] for n in self.c.kubectl_json("get", "ns")["items"]]
        for ns in ["default", "kube-system", "kube-public"]:
            self.assertIn(ns, names)
        wait_for(lambda: self.k("get", "ns", "doomed", check=False).returncode != 0, 60,
                 what="namespace doomed to go")
        # kube-node-lease may go, as upstream; the API server makes it again.
        wait_for(lambda: self.k("get", "ns", "kube-node-lease", check=False).returncode == 0, 90,
                 what="kube-node-lease made again")

    # 3. Made again under the same name
    def test_replicasets_and_rcs_made_again_under_their_name_get_pods(self):
        for kind, manifest, label in [("rs", RS, "tier=frontend"), ("rc", RC, "name=frontend")]:
            for _ in range(3):
                self.k("create", "-f", "-", input=manifest)
                self.k("delete", kind, "frontend", "--wait=false")
                self.k("create", "-f", "-", input=manifest)
                uid = self.c.kubectl_json("get", kind, "frontend")["metadata"]["uid"]

                def owned():
                    pods = self.c.kubectl_json("get", "pods", "-l", label)["items"]
                    return len([p for p in pods if not p["metadata"].get("deletionTimestamp") and
                                (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == uid])
                wait_for(lambda: owned() == 3, 30, what=f"3 pods of the new {kind}")
                self.k("delete", kind, "frontend")
                wait_for(lambda: not self.c.kubectl_json("get", "pods", "-l", label)["items"], 30,
                         what="pods gone")

    def test_replication_controllers(self):
        self.k("create", "-f", "-", input=RC)
        rc = self.c.kubectl_json("get", "rc", "frontend")
        # Defaults: the selector and labels come from the template.
        self.assertEqual(rc["spec"]["selector"], {"name": "frontend"})
        self.assertEqual(rc["metadata"]["labels"], {"name": "frontend"})
        wait_for(lambda: self.c.kubectl_json("get", "rc", "frontend")["status"].get("replicas") == 3,
                 30, what="3 replicas")
        r = self.k("scale", "--current-replicas=2", "--replicas=1", "rc", "frontend", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.k("scale", "--current-replicas=3", "--replicas=2", "rc", "frontend")
        wait_for(lambda: len(self.c.kubectl_json("get", "pods", "-l", "name=frontend")["items"]) == 2,
                 30, what="2 pods")
        scale = json.loads(self.k("get", "--raw", "/api/v1/namespaces/default/replicationcontrollers/frontend/scale").stdout)
        self.assertEqual(scale["status"]["selector"], "name=frontend")
        self.assertIn("frontend", self.k("get", "all").stdout)
        self.k("expose", "rc", "frontend", "--port=80")
        self.assertEqual(self.c.kubectl_json("get", "svc", "frontend")["spec"]["selector"],
                         {"name": "frontend"})
        # The Python client reads and writes them too.
        v1 = self.client.CoreV1Api(self.api)
        self.assertEqual(v1.read_namespaced_replication_controller("frontend", "default").spec.replicas, 2)
        self.k("delete", "svc", "frontend")
        self.k("delete", "rc", "frontend")
        wait_for(lambda: not self.c.kubectl_json("get", "pods", "-l", "name=frontend")["items"], 30,
                 what="the RC's pods to go")

    # 4. managedFields
    def test_field_managers_after_create_set_and_apply(self):
        managers = lambda *obj: self.k("get", *obj, "-o=jsonpath={.metadata.managedFields[*].manager}").stdout
        self.k("create", "deployment", "mf", "--image=nginx")
        self.assertIn("kubectl-create", managers("deploy", "mf"))
        self.k("set", "image", "deploy/mf", "nginx=nginx:2")
        self.assertIn("kubectl-set", managers("deploy", "mf"))
        self.k("scale", "deploy", "mf", "--replicas=2")
        d = self.c.kubectl_json("get", "deploy", "mf", "--show-managed-fields")
        scale = [m for m in d["metadata"]["managedFields"] if m.get("subresource") == "scale"]
        self.assertEqual(scale[0]["manager"], "kubectl")
        self.assertEqual(scale[0]["fieldsV1"], {"f:spec": {"f:replicas": {}}})
        create = [m for m in d["metadata"]["managedFields"] if m["manager"] == "kubectl-create"][0]
        self.assertEqual(create["operation"], "Update")
        self.assertEqual(create["apiVersion"], "apps/v1")
        self.assertIn(".", create["fieldsV1"]["f:metadata"]["f:labels"])
        # kubectl get hides them unless asked (client-side); the server always sends them.
        self.assertNotIn("managedFields", self.c.kubectl_json("get", "deploy", "mf")["metadata"])
        self.assertIn('"managedFields"', self.k("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/mf").stdout)

        self.k("apply", "-f", "-", input=POD)
        self.assertIn("kubectl-client-side-apply", managers("pod", "test-pod"))
        self.k("apply", "--server-side", "-f", "-", input=POD)
        self.assertIn("kubectl", managers("pod", "test-pod").split())
        # A second manager applying the same values shares them; another value conflicts.
        self.k("apply", "--server-side", "--field-manager=my-field-manager", "-f", "-", input=POD)
        changed = POD.replace("image: busybox", "image: busybox:2")
        r = self.k("apply", "--server-side", "--field-manager=my-field-manager", "-f", "-",
                   input=changed, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('Apply failed with 1 conflict: conflict with "kubectl": '
                      '.spec.containers[name="c"].image', r.stderr)
        self.k("apply", "--server-side", "--field-manager=my-field-manager", "--force-conflicts",
               "-f", "-", input=changed)
        pod = self.c.kubectl_json("get", "pod", "test-pod", "--show-managed-fields")
        self.assertEqual(pod["spec"]["containers"][0]["image"], "busybox:2")
        owners = {m["manager"]: m for m in pod["metadata"]["managedFields"]}
        self.assertIn("f:image", owners["my-field-manager"]["fieldsV1"]["f:spec"]["f:containers"]['k:{"name":"c"}'])
        self.assertNotIn("f:image", owners["kubectl"]["fieldsV1"]["f:spec"]["f:containers"]['k:{"name":"c"}'])
        self.assertEqual(owners["my-field-manager"]["operation"], "Apply")
        # The raw conflict, as the Python client sees it.
        from kubernetes.client.rest import ApiException
        v1 = self.client.CoreV1Api(self.api)
        with self.assertRaises(ApiException) as e:
            self.apply("/api/v1/namespaces/default/pods/test-pod",
                       {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test-pod"},
                        "spec": {"containers": [{"name": "c", "image": "busybox:3"}]}}, "py")
        status = json.loads(e.exception.body)
        self.assertEqual((e.exception.status, status["reason"]), (409, "Conflict"))
        self.assertEqual(status["details"]["causes"][0],
                         {"reason": "FieldManagerConflict",
                          "message": 'conflict with "my-field-manager"',
                          "field": '.spec.containers[name="c"].image'})

    def test_client_side_to_server_side_apply_prunes_what_csa_set(self):
        cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: migrate}\ndata: {key: value, legacy: unused}\n"
        self.k("apply", "-f", "-", input=cm)
        self.k("apply", "--server-side", "-f", "-", input=cm)
        self.assertEqual(self.c.kubectl_json("get", "cm", "migrate")["data"], {"key": "value", "legacy": "unused"})
        self.k("apply", "--server-side", "-f", "-", input=cm.replace(", legacy: unused", ""))
        self.assertEqual(self.c.kubectl_json("get", "cm", "migrate")["data"], {"key": "value"})
        # A manager other than kubectl is not forgiven the client-side apply's fields.
        self.k("apply", "-f", "-", input=POD.replace("test-pod", "csa-pod"))
        r = self.k("apply", "--server-side", "--field-manager=not-kubectl", "-f", "-",
                   input=POD.replace("test-pod", "csa-pod").replace("busybox", "busybox:2"), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("conflict", r.stderr)
        self.k("apply", "--server-side", "-f", "-", input=POD.replace("test-pod", "csa-pod"))
        last = json.loads(self.k("apply", "view-last-applied", "pod", "csa-pod", "-o", "json").stdout)
        self.assertEqual(last["metadata"]["name"], "csa-pod")

    def test_apply_to_status_and_through_other_versions(self):
        # Apply to /status changes status only, recorded under subresource status.
        self.k("apply", "--server-side", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: st}\n")
        self.apply("/api/v1/namespaces/st/status",
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "st"},
                    "spec": {"finalizers": ["example.com/x"]},
                    "status": {"conditions": [{"type": "Example", "status": "True"}]}}, "status-writer")
        ns = self.c.kubectl_json("get", "ns", "st", "--show-managed-fields")
        self.assertEqual(ns["status"]["conditions"][0]["type"], "Example")
        self.assertEqual(ns["spec"]["finalizers"], ["kubernetes"])
        entry = [m for m in ns["metadata"]["managedFields"] if m["manager"] == "status-writer"][0]
        self.assertEqual((entry["operation"], entry.get("subresource")), ("Apply", "status"))
        self.assertIn("f:status", entry["fieldsV1"])
        # Through autoscaling/v1 an apply is an apply in that version.
        self.k("create", "deployment", "hpav1", "--image=nginx")
        hpa = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "hpav1"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hpav1"},
                        "maxReplicas": 4, "targetCPUUtilizationPercentage": 60}}
        self.apply("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/hpav1", hpa, "v1-applier")
        got = self.c.kubectl_json("get", "hpa", "hpav1", "--show-managed-fields")
        self.assertEqual(got["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 60)
        entry = [m for m in got["metadata"]["managedFields"] if m["manager"] == "v1-applier"][0]
        self.assertEqual((entry["operation"], entry["apiVersion"]), ("Apply", "autoscaling/v1"))
        # Removing a container port from an applied manifest removes the port
        # (its protocol defaulted to TCP names the same item).
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ports"},
               "spec": {"selector": {"matchLabels": {"a": "p"}},
                        "template": {"metadata": {"labels": {"a": "p"}},
                                     "spec": {"containers": [{"name": "c", "image": "busybox",
                                                              "ports": [{"containerPort": 80}, {"containerPort": 81}]}]}}}}
        path = "/apis/apps/v1/namespaces/default/deployments/ports"
        self.apply(path, dep, "porter")
        dep["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
        self.apply(path, dep, "porter")
        ports = self.c.kubectl_json("get", "deploy", "ports")["spec"]["template"]["spec"]["containers"][0]["ports"]
        self.assertEqual([p["containerPort"] for p in ports], [80])

    def test_apply_without_field_manager_and_with_managed_fields_is_refused(self):
        from kubernetes.client.rest import ApiException
        v1 = self.client.CoreV1Api(self.api)
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nofm"}}
        path = "/api/v1/namespaces/default/configmaps/nofm"
        with self.assertRaises(ApiException) as e:
            self.apply(path, body, None)
        self.assertEqual(e.exception.status, 422)
        self.assertIn("fieldManager: Required value: is required for apply patch", e.exception.body)
        body["metadata"]["managedFields"] = []
        with self.assertRaises(ApiException) as e:
            self.apply(path, body, "x")
        self.assertEqual(e.exception.status, 400)
        self.assertIn("metadata.managedFields must be nil", e.exception.body)
        # Without fieldManager, an update is recorded under the client's product name.
        v1.create_namespaced_config_map("default", {"metadata": {"name": "bypy"}, "data": {"a": "1"}})
        cm = v1.read_namespaced_config_map("bypy", "default")
        self.assertEqual([m.manager for m in cm.metadata.managed_fields], ["OpenAPI-Generator"])

    # 6. Undecodable bodies
    def test_undecodable_bodies_are_unrecognized(self):
        path = os.path.join(self.c.dir, "pod.yaml")
        with open(path, "w") as f:
            f.write(POD)
        r = self.k("create", "--raw", "/api/v1/namespaces", "-f", path, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("the object provided is unrecognized (must be of type Namespace)", r.stderr)
        jpath = os.path.join(self.c.dir, "pod.json")
        with open(jpath, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}, f)
        r = self.k("create", "--raw", "/api/v1/namespaces", "-f", jpath, check=False)
        self.assertIn('Pod in version "v1" cannot be handled as a Namespace', r.stderr)

    # 7. What a v1.32 server serves
    def test_discovery_matches_kube_apiserver(self):
        with open(FIXTURE) as f:
            want = json.load(f)
        with open(DOCS) as f:
            docs = f.read()
        served = {}
        for gv in ["v1"] + [f"{g['name']}/{v['version']}" for g in json.loads(self.k("get", "--raw", "/apis").stdout)["groups"] for v in g["versions"]]:
            path = "/api/v1" if gv == "v1" else "/apis/" + gv
            for r in json.loads(self.k("get", "--raw", path).stdout)["resources"]:
                served[gv + "/" + r["name"]] = r
        expected = {}
        for r in want["resources"]:
            gv = r["version"] if not r["group"] else r["group"] + "/" + r["version"]
            expected[gv + "/" + r["resource"]] = r
            for s in r["subresources"]:
                expected[gv + "/" + r["resource"] + "/" + s["name"]] = dict(s, namespaced=r["namespaced"])
        not_served = lambda key: any(key == n or key.startswith(n + "/") for n in NOT_SERVED)
        missing = {k for k in set(expected) - set(served) if not not_served(k)}
        extra = set(served) - set(expected)
        self.assertEqual(missing, set(), "served by kube-apiserver 1.32, not by minik")
        self.assertEqual(extra, set(), "served by minik, not by kube-apiserver 1.32")
        for key in NOT_SERVED:
            self.assertNotIn(key, served)
            self.assertIn(key.split("/", 1)[1] if key.startswith("v1/") else key.split("/")[-1], docs,
                          f"{key} is not served: docs/apiserver.md must say why")
        for key, e in expected.items():
            if not_served(key):
                continue
            s = served[key]
            self.assertEqual(sorted(s["verbs"]), sorted(e["verbs"]), key)
            self.assertEqual(s["namespaced"], e["namespaced"], key)
            self.assertEqual(s["kind"], e["kind"], key)
            if "shortNames" in e:
                self.assertEqual(s.get("shortNames", []), e["shortNames"], key)
                self.assertEqual(s.get("categories", []), e["categories"], key)
        # Groups, their versions and the preferred one, in kube-apiserver's order.
        groups = json.loads(self.k("get", "--raw", "/apis").stdout)["groups"]
        served_groups = {k.split("/")[0] for k in served if k.count("/") >= 2}
        want_groups = [g for g in want["groups"] if g["group"] in served_groups]
        self.assertEqual([g["name"] for g in groups], [g["group"] for g in want_groups])
        for g, w in zip(groups, want_groups):
            self.assertEqual([v["version"] for v in g["versions"]], w["versions"])
            self.assertEqual(g["preferredVersion"]["version"], w["preferredVersion"])
        # `kubectl get all` asks for what it asks on a real cluster.
        all_kinds = {r["resource"] for r in want["resources"] if "all" in r["categories"]}
        out = self.k("api-resources", "--categories=all", "-o", "name").stdout.split()
        self.assertEqual({x.split(".")[0] for x in out}, all_kinds)

    def test_new_resources_work_with_kubectl(self):
        self.k("create", "deployment", "scaled", "--image=nginx")
        self.k("autoscale", "deployment", "scaled", "--max=3", "--cpu-percent=70")
        hpa = json.loads(self.k("get", "--raw", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/scaled").stdout)
        self.assertEqual((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"],
                          hpa["spec"]["targetCPUUtilizationPercentage"]), (1, 3, 70))
        self.k("autoscale", "deployment", "scaled", "--min=2", "--max=3", "--name=scaled2")
        v2 = self.c.kubectl_json("get", "hpa", "scaled2")
        self.assertEqual(v2["apiVersion"], "autoscaling/v2")
        self.assertEqual(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80)
        self.assertIn("cpu: <unknown>/80%", self.k("get", "hpa", "scaled2").stdout)
        self.assertIn("kubectl-autoscale", self.k("get", "hpa", "scaled2", "-o=jsonpath={.metadata.managedFields[*].manager}").stdout)
        self.k("create", "-f", "-", input="apiVersion: v1\nkind: PodTemplate\nmetadata: {name: pt}\n"
               "template:\n  metadata: {labels: {a: b}}\n  spec:\n    containers: [{name: c, image: busybox}]\n")
        self.assertIn("a=b", self.k("get", "podtemplates").stdout)
        self.k("create", "-f", "-", input="apiVersion: apiregistration.k8s.io/v1\nkind: APIService\n"
               "metadata: {name: v1alpha1.wardle.example.com}\nspec: {group: wardle.example.com, "
               "version: v1alpha1, groupPriorityMinimum: 1000, versionPriority: 15, "
               "service: {namespace: wardle, name: api}}\n")
        r = self.k("create", "-f", "-", check=False, input="apiVersion: apiregistration.k8s.io/v1\nkind: APIService\n"
                   "metadata: {name: v1alpha1.wardle.example.com}\nspec: {group: wardle.example.com, "
                   "version: v1alpha1, groupPriorityMinimum: 1000, versionPriority: 15}\n")
        self.assertIn('apiservices.apiregistration.k8s.io "v1alpha1.wardle.example.com" already exists', r.stderr)
        cs = self.k("get", "componentstatuses").stdout
        self.assertIn("scheduler", cs)
        self.assertIn("Healthy", cs)
        self.assertEqual(self.k("auth", "can-i", "create", "pods").stdout.strip(), "yes")
        self.k("create", "-f", "-", input="apiVersion: networking.k8s.io/v1\nkind: IngressClass\n"
               "metadata: {name: nginx}\nspec: {controller: k8s.io/ingress-nginx}\n")
        self.assertIn("k8s.io/ingress-nginx", self.k("get", "ingressclass").stdout)
        # core events and events.k8s.io events are the same objects.
        self.k("create", "-f", "-", input="apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: ev1}\n"
               "eventTime: '2026-01-01T00:00:00.000000Z'\nreportingController: me\nreportingInstance: me-1\n"
               "action: Test\nreason: Tested\nnote: hello\ntype: Normal\nregarding: {kind: Pod, name: x, namespace: default}\n")
        core = json.loads(self.k("get", "--raw", "/api/v1/namespaces/default/events/ev1").stdout)
        self.assertEqual((core["message"], core["involvedObject"]["name"]), ("hello", "x"))

    # 9. OpenAPI v2
    def test_openapi_v2_in_json_and_protobuf(self):
        status, headers, body = self.raw("/openapi/v2")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        doc = json.loads(body)
        self.assertEqual(doc["swagger"], "2.0")
        pod = doc["definitions"]["io.k8s.api.core.v1.Pod"]
        self.assertEqual(pod["x-kubernetes-group-version-kind"], [{"group": "", "kind": "Pod", "version": "v1"}])
        self.assertEqual(pod["properties"]["spec"], {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"})
        patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
        self.assertEqual(patch["x-kubernetes-group-version-kind"], {"group": "apps", "version": "v1", "kind": "Deployment"})
        self.assertIn("fieldValidation", [p["name"] for p in patch["parameters"]])
        # kubectl asks for protobuf; the answer names the type with a dot.
        status, pheaders, pbody = self.raw("/openapi/v2", {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        self.assertEqual(pheaders["Content-Type"], "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        self.assertEqual(pbody[:5], b"\x0a\x032.0")  # Document.swagger = "2.0"
        # Each form its own Etag, answered with 304 when the client has it.
        self.assertNotEqual(pheaders["Etag"], headers["Etag"])
        status, _, _ = self.raw("/openapi/v2", {"If-None-Match": headers["Etag"]})
        self.assertEqual(status, 304)
        status, _, _ = self.raw("/openapi/v2", {"If-None-Match": headers["Etag"],
                                                "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        self.assertEqual(status, 200)
        status, _, _ = self.raw("/openapi/v2", {"Accept": "application/xml"})
        self.assertEqual(status, 406)
        # kubectl reads the protobuf form itself for explain's v2 output.
        out = self.k("explain", "pods.spec.containers.ports", "--output=plaintext-openapiv2").stdout
        self.assertIn("KIND:     Pod", out)
        self.assertIn("containerPort\t<integer>", out)

    # 10. Wire format
    def test_status_and_version_bodies_are_kube_apiservers(self):
        from kubernetes.client.rest import ApiException
        v1 = self.client.CoreV1Api(self.api)
        with self.assertRaises(ApiException) as e:
            v1.create_namespaced_service("default", {"metadata": {"name": "kubernetes"},
                                                     "spec": {"ports": [{"port": 80}]}})
        self.assertEqual(e.exception.reason, "Conflict")
        self.assertEqual(e.exception.body, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                         '"message":"services \\"kubernetes\\" already exists","reason":"AlreadyExists",'
                         '"details":{"name":"kubernetes","kind":"services"},"code":409}\n')
        status, headers, body = self.raw("/apis/apps/v1/namespaces/default/deployments/none")
        self.assertEqual(status, 404)
        self.assertEqual(body, b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                         b'"message":"deployments.apps \\"none\\" not found","reason":"NotFound",'
                         b'"details":{"name":"none","group":"apps","kind":"deployments"},"code":404}\n')
        status, headers, body = self.raw("/version")
        self.assertEqual(list(json.loads(body).keys()),
                         ["major", "minor", "gitVersion", "gitCommit", "gitTreeState", "buildDate",
                          "goVersion", "compiler", "platform"])
        self.assertTrue(body.startswith(b'{\n  "major": "1",\n  "minor": "32",'))
        self.assertFalse(body.endswith(b"\n"))
        # Objects in their Go structs' order, as kube-apiserver writes them.
        status, headers, body = self.raw("/api/v1/namespaces/default/services/kubernetes")
        self.assertTrue(body.startswith(b'{"kind":"Service","apiVersion":"v1","metadata":{"name":"kubernetes","namespace":"default","uid":'), body[:120])
        spec = json.loads(body)["spec"]
        keys = list(spec.keys())
        self.assertLess(keys.index("ports"), keys.index("clusterIP"))
        self.assertLess(keys.index("clusterIP"), keys.index("clusterIPs"))
        self.assertLess(keys.index("clusterIPs"), keys.index("type"))
        self.assertTrue(body.endswith(b"}\n"))

    # 5. Leader leases given up on stop (a restart does not wait for them)
    def test_zz_stop_gives_up_leader_leases(self):
        self.c.minik("stop")
        self.c.minik("start", "--no-kubelet")
        logs = os.path.join(self.c.env["MINIK_HOME"], "profiles", self.c.profile, "node", "logs")
        for comp, lease in [("controller-manager", "kube-controller-manager"),
                            ("scheduler", "kube-scheduler")]:
            with open(os.path.join(logs, comp + ".log")) as f:
                text = f.read()
            self.assertIn(f"released lease kube-system/{lease}", text)

            def since_release():
                with open(os.path.join(logs, comp + ".log")) as f:
                    return f.read().rsplit("released lease", 1)[1]
            # The new instance takes the lease at once, not after it expires.
            wait_for(lambda: "acquired lease" in since_release(), 10, what=f"{comp} to lead again")
            self.assertNotIn("standing by", since_release())
            self.assertNotIn("taking over", since_release())


class ReplacedWhileAwayTest(unittest.TestCase):
    """A ReplicaSet deleted and made again under its name while the
    controller manager was away: it sees the change only by listing again
    (its watch's revision expired), as an update whose UID changed. What it
    expected of the old ReplicaSet (deletions held back by a finalizer) must
    not hold back the new one. A cluster of its own: the store keeps history
    for 2 s only, so the watch does expire."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster("e2e-replaced")
        out = cls.c.start("--no-kubelet", "--extra-config", "apiserver.history-seconds=2").stdout
        assert "Done!" in out, out

    @classmethod
    def tearDownClass(cls):
        cls.c.delete()

    def k(self, *args, **kw):
        return self.c.kubectl(*args, **kw)

    def component(self, name):
        """The pid of this cluster's `minik NAME` process."""
        home = self.c.env["MINIK_HOME"]
        for pid, argv in processes():
            if len(argv) > 1 and argv[1] == name and any(home in a for a in argv):
                return pid
        raise AssertionError(f"no {name} process of this cluster")

    def test_replicaset_replaced_while_its_controller_was_away(self):
        rs = RS.replace("name: frontend", "name: replaced").replace(
            "tier: frontend", "tier: replaced").replace(
            "labels: {tier: replaced}", "labels: {tier: replaced}\n      finalizers: [example.com/hold]")
        self.k("create", "-f", "-", input=rs)
        wait_for(lambda: len(self.c.kubectl_json("get", "pods", "-l", "tier=replaced")["items"]) == 3,
                 30, what="3 pods")
        self.k("scale", "rs", "replaced", "--replicas=0")
        wait_for(lambda: all(p["metadata"].get("deletionTimestamp") for p in
                             self.c.kubectl_json("get", "pods", "-l", "tier=replaced")["items"]),
                 30, what="the pods terminating (held by their finalizer)")
        cm = self.component("controller-manager")
        os.kill(cm, signal.SIGSTOP)
        try:
            # The API server starts again while the controller manager is
            # away, so nothing of what follows waits in its connections.
            os.kill(self.component("apiserver"), signal.SIGKILL)
            wait_for(lambda: self.k("get", "ns", "default", check=False).returncode == 0, 60,
                     what="the API server back")
            self.k("delete", "rs", "replaced")
            self.k("create", "-f", "-", input=rs.replace("tier: replaced}", "tier: replaced, round: two}"))
            uid = self.c.kubectl_json("get", "rs", "replaced")["metadata"]["uid"]
            # The history the controller manager would watch from expires.
            time.sleep(3)
            self.k("create", "configmap", "later")
        finally:
            os.kill(cm, signal.SIGCONT)

        def owned():
            pods = self.c.kubectl_json("get", "pods", "-l", "tier=replaced,round=two")["items"]
            return len([p for p in pods if (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == uid])
        wait_for(lambda: owned() == 3, 45, what="3 pods of the new ReplicaSet")
        for p in self.c.kubectl_json("get", "pods", "-l", "tier=replaced")["items"]:
            self.k("patch", "pod", p["metadata"]["name"], "--type=json",
                   "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=False)


if __name__ == "__main__":
    unittest.main()
