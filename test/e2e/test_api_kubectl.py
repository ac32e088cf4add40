"""The API server as real kubectl 1.32 and the Python client use it, on a
cluster made by `minik start` (native driver)."""

import base64
import json
import os
import re
import time
import unittest

from cluster import Cluster, wait_for

APP = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
  namespace: shop
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: shop-secret
  namespace: shop
stringData:
  password: s3cret
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 8080
"""


class KubectlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster("e2e-api")
        out = cls.c.start("--no-kubelet").stdout
        assert "Done!" in out, out

    @classmethod
    def tearDownClass(cls):
        cls.c.delete()

    def test_create_generators_make_real_objects(self):
        k = self.c.kubectl
        k("create", "namespace", "gen")
        self.assertIn("deployment.apps/web created",
                      k("-n", "gen", "create", "deployment", "web", "--image=nginx:1.27", "--port=80").stdout)
        k("-n", "gen", "create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=two")
        k("-n", "gen", "create", "secret", "generic", "s1", "--from-literal=user=admin")
        k("-n", "gen", "create", "service", "clusterip", "web", "--tcp=80:8080")

        ns = self.c.kubectl_json("get", "namespace", "gen")
        self.assertEqual(ns["status"]["phase"], "Active")
        self.assertEqual(ns["spec"]["finalizers"], ["kubernetes"])
        self.assertEqual(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "gen")

        d = self.c.kubectl_json("-n", "gen", "get", "deployment", "web")
        self.assertEqual(d["spec"]["replicas"], 1)
        self.assertEqual(d["spec"]["selector"], {"matchLabels": {"app": "web"}})
        self.assertEqual(d["spec"]["strategy"],
                         {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        self.assertEqual(d["spec"]["revisionHistoryLimit"], 10)
        self.assertEqual(d["spec"]["progressDeadlineSeconds"], 600)
        self.assertEqual(d["metadata"]["generation"], 1)
        self.assertRegex(d["metadata"]["uid"], r"^[0-9a-f-]{36}$")
        c = d["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["name"], "nginx")
        self.assertEqual(c["image"], "nginx:1.27")
        self.assertEqual(c["imagePullPolicy"], "IfNotPresent")
        self.assertEqual(c["ports"], [{"containerPort": 80, "protocol": "TCP"}])
        self.assertEqual(c["terminationMessagePath"], "/dev/termination-log")
        self.assertEqual(d["spec"]["template"]["spec"]["restartPolicy"], "Always")
        self.assertEqual(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst")

        cm = self.c.kubectl_json("-n", "gen", "get", "configmap", "cfg")
        self.assertEqual(cm["data"], {"a": "1", "b": "two"})
        s = self.c.kubectl_json("-n", "gen", "get", "secret", "s1")
        self.assertEqual(s["type"], "Opaque")
        self.assertEqual(s["data"], {"user": "YWRtaW4="})
        svc = self.c.kubectl_json("-n", "gen", "get", "service", "web")
        self.assertRegex(svc["spec"]["clusterIP"], r"^10\.(9[6-9]|10[0-9]|11[01])\.")
        self.assertNotEqual(svc["spec"]["clusterIP"], "10.96.0.1")
        self.assertEqual(svc["spec"]["ports"], [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}])
        self.assertEqual(svc["spec"]["selector"], {"app": "web"})
        self.assertEqual(svc["spec"]["type"], "ClusterIP")
        self.assertEqual(svc["spec"]["sessionAffinity"], "None")

        # A second create of the same name is refused, as on any cluster.
        r = k("-n", "gen", "create", "configmap", "cfg", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('configmaps "cfg" already exists', r.stderr)

    def test_apply_create_unchanged_configure(self):
        k = self.c.kubectl
        out = k("apply", "-f", "-", input=APP).stdout
        for line in ["namespace/shop created", "configmap/shop-config created", "secret/shop-secret created",
                     "service/web created", "deployment.apps/web created"]:
            self.assertIn(line, out)
        # The Secret's stringData is never stored, so kubectl always finds it
        # missing from the live object and patches it in again ("configured"),
        # as on any cluster; the value stays the same.
        out = k("apply", "-f", "-", input=APP).stdout
        self.assertEqual(out.count("unchanged"), 4, out)
        self.assertIn("secret/shop-secret configured", out)
        secret = self.c.kubectl_json("-n", "shop", "get", "secret", "shop-secret")
        self.assertEqual(secret["data"], {"password": base64.b64encode(b"s3cret").decode()})
        self.assertNotIn("stringData", secret)
        changed = APP.replace("replicas: 2", "replicas: 3").replace("nginx:1.27", "nginx:1.28")
        out = k("apply", "-f", "-", input=changed).stdout
        self.assertIn("deployment.apps/web configured", out)
        self.assertEqual(out.count("unchanged"), 3, out)
        d = self.c.kubectl_json("-n", "shop", "get", "deploy", "web")
        self.assertEqual(d["spec"]["replicas"], 3)
        self.assertEqual(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.28")
        self.assertEqual(d["metadata"]["generation"], 2)
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration", d["metadata"]["annotations"])
        # Server-side apply creates and then merges.
        cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: shop\ndata:\n  a: '1'\n"
        k("apply", "--server-side", "-f", "-", input=cm)
        k("apply", "--server-side", "-f", "-", input=cm.replace("'1'", "'2'"))
        self.assertEqual(self.c.kubectl_json("-n", "shop", "get", "cm", "ssa")["data"], {"a": "2"})

    def test_get_describe_label_annotate_delete(self):
        k = self.c.kubectl
        k("create", "namespace", "ops")
        pod = """apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: ops, labels: {app: p}}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""
        k("apply", "-f", "-", input=pod)
        out = k("-n", "ops", "get", "pods").stdout
        self.assertRegex(out.splitlines()[0], r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$")
        self.assertRegex(out.splitlines()[1], r"^p1\s+0/1\s+Pending\s+0\s+\d+s$")
        wide = k("-n", "ops", "get", "pods", "-o", "wide").stdout
        self.assertRegex(wide.splitlines()[0], r"^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES$")
        y = k("-n", "ops", "get", "pod", "p1", "-o", "yaml").stdout
        self.assertIn("restartPolicy: Always", y)
        self.assertIn("serviceAccountName: default", y)
        self.assertIn("phase: Pending", y)
        k("-n", "ops", "create", "deployment", "api", "--image=nginx")
        allout = k("-n", "ops", "get", "all").stdout
        self.assertIn("pod/p1", allout)
        self.assertIn("deployment.apps/api", allout)
        self.assertRegex(k("get", "svc", "-A").stdout, r"default\s+kubernetes\s+ClusterIP\s+10\.96\.0\.1\s+<none>\s+443/TCP")
        desc = k("-n", "ops", "describe", "deployment", "api").stdout
        self.assertRegex(desc, r"Name:\s+api")
        self.assertRegex(desc, r"Replicas:\s+1 desired")
        self.assertRegex(desc, r"StrategyType:\s+RollingUpdate")
        self.assertIn("pod/p1 labeled", k("-n", "ops", "label", "pod", "p1", "tier=db").stdout)
        self.assertIn("pod/p1 annotated", k("-n", "ops", "annotate", "pod", "p1", "note=x").stdout)
        self.assertEqual(k("-n", "ops", "get", "pods", "-l", "tier=db", "-o", "name").stdout.strip(), "pod/p1")
        self.assertEqual(k("-n", "ops", "get", "pods", "-l", "app=p,tier!=db", "-o", "name").stdout.strip(), "")
        p = self.c.kubectl_json("-n", "ops", "get", "pod", "p1")
        self.assertEqual(p["metadata"]["annotations"]["note"], "x")
        self.assertIn('pod "p1" deleted', k("-n", "ops", "delete", "pod", "p1").stdout)
        self.assertIn("NotFound", k("-n", "ops", "get", "pod", "p1", check=False).stderr)

    def test_delete_file_and_namespace_empties_it(self):
        k = self.c.kubectl
        app = APP.replace("shop", "gone")
        k("apply", "-f", "-", input=app)
        k("-n", "gone", "create", "configmap", "extra", "--from-literal=a=1")
        out = k("delete", "-f", "-", input=app, timeout=60).stdout
        for line in ['namespace "gone" deleted', 'configmap "gone-config" deleted',
                     'deployment.apps "web" deleted']:
            self.assertIn(line, out)
        # The namespace controller removes what was left, then the namespace.
        wait_for(lambda: k("get", "namespace", "gone", check=False).returncode != 0,
                 what="namespace gone to disappear")
        self.assertEqual(k("get", "configmaps", "-n", "gone", "-o", "name").stdout.strip(), "")
        r = k("-n", "gone", "create", "configmap", "again", check=False)
        self.assertIn('namespaces "gone" not found', r.stderr)

    def test_watch_shows_later_changes(self):
        k = self.c.kubectl
        k("create", "namespace", "watched")
        w = self.c.popen_kubectl("-n", "watched", "get", "configmaps", "-w")
        try:
            time.sleep(1.5)
            k("-n", "watched", "create", "configmap", "late", "--from-literal=x=1")
            time.sleep(0.5)
            k("-n", "watched", "label", "configmap", "late", "seen=yes")
        finally:
            time.sleep(1.5)
            w.terminate()
            out, err = w.communicate(timeout=10)
        lines = [l for l in out.splitlines() if l.startswith("late")]
        self.assertGreaterEqual(len(lines), 2, out + err)
        self.assertRegex(out.splitlines()[0], r"^NAME\s+DATA\s+AGE")

    def test_invalid_objects_and_conflicts(self):
        k = self.c.kubectl
        bad = """apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec:
      containers: [{name: c}]
"""
        r = k("apply", "-f", "-", input=bad, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('The Deployment "broken" is invalid', r.stderr)
        self.assertIn("spec.template.metadata.labels", r.stderr)
        self.assertIn("spec.template.spec.containers[0].image: Required value", r.stderr)
        # Unknown fields: kubectl's default validation is left to the server (Strict).
        typo = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndatta: {a: b}\n"
        r = k("apply", "-f", "-", input=typo, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('unknown field "datta"', r.stderr)

        client, api = self.c.python_client()
        v1 = client.CoreV1Api(api)
        v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="race"), data={"count": "0"}))
        first = v1.read_namespaced_config_map("race", "default")
        second = v1.read_namespaced_config_map("race", "default")
        first.data["count"] = "1"
        v1.replace_namespaced_config_map("race", "default", first)
        second.data["count"] = "2"
        from kubernetes.client.rest import ApiException
        with self.assertRaises(ApiException) as cm:
            v1.replace_namespaced_config_map("race", "default", second)
        self.assertEqual(cm.exception.status, 409)
        # kubectl apply re-reads and retries on 409; concurrent appliers all succeed.
        for i in range(5):
            k("apply", "-f", "-", input=f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: race}}\ndata: {{count: '{i+10}'}}\n")
        self.assertEqual(v1.read_namespaced_config_map("race", "default").data["count"], "14")

    def test_python_client(self):
        client, api = self.c.python_client()
        v1 = client.CoreV1Api(api)
        names = [n.metadata.name for n in v1.list_namespace().items]
        for n in ["default", "kube-system", "kube-public", "kube-node-lease"]:
            self.assertIn(n, names)
        self.assertEqual(client.VersionApi(api).get_code().minor, "32")
        apps = client.AppsV1Api(api)
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pyd"},
                "spec": {"selector": {"matchLabels": {"a": "b"}},
                         "template": {"metadata": {"labels": {"a": "b"}},
                                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
        apps.create_namespaced_deployment("default", body)
        apps.patch_namespaced_deployment("pyd", "default", {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}})
        d = apps.read_namespaced_deployment("pyd", "default")
        self.assertEqual(d.spec.template.spec.containers[0].image, "busybox:1.36")
        self.assertEqual(d.metadata.generation, 2)
        scale = apps.patch_namespaced_deployment_scale("pyd", "default", {"spec": {"replicas": 5}})
        self.assertEqual(scale.spec.replicas, 5)
        self.assertEqual(apps.read_namespaced_deployment("pyd", "default").spec.replicas, 5)
        from kubernetes import dynamic, watch
        dc = dynamic.DynamicClient(api)
        self.assertIn("pyd", [x.metadata.name for x in dc.resources.get(api_version="apps/v1", kind="Deployment").get(namespace="default").items])
        seen = []
        for ev in watch.Watch().stream(v1.list_namespaced_service, "default", timeout_seconds=1):
            seen.append((ev["type"], ev["object"].metadata.name))
        self.assertIn(("ADDED", "kubernetes"), seen)
        apps.delete_namespaced_deployment("pyd", "default")
        wait_for(lambda: "pyd" not in [x.metadata.name for x in apps.list_namespaced_deployment("default").items])

    def as_token(self, token, *args):
        return self.c.kubectl("--kubeconfig", self.c.token_kubeconfig(token), *args, check=False)

    def test_service_account_tokens(self):
        k = self.c.kubectl
        k("create", "namespace", "tok")
        wait_for(lambda: k("-n", "tok", "get", "sa", "default", check=False).returncode == 0,
                 what="the default service account")
        # The root CA is published in every namespace, equal to the kubeconfig's CA.
        cfg = json.loads(k("config", "view", "--raw", "--minify", "-o", "json").stdout)
        ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        wait_for(lambda: k("-n", "tok", "get", "cm", "kube-root-ca.crt", check=False).returncode == 0,
                 what="kube-root-ca.crt")
        self.assertEqual(self.c.kubectl_json("-n", "tok", "get", "cm", "kube-root-ca.crt")["data"]["ca.crt"], ca)
        # A deleted copy comes back.
        k("-n", "tok", "delete", "cm", "kube-root-ca.crt")
        wait_for(lambda: k("-n", "tok", "get", "cm", "kube-root-ca.crt", check=False).returncode == 0,
                 what="kube-root-ca.crt to be published again")

        token = k("-n", "tok", "create", "token", "default").stdout.strip()
        header, claims, _ = token.split(".")
        pad = lambda s: s + "=" * (-len(s) % 4)
        self.assertEqual(json.loads(base64.urlsafe_b64decode(pad(header)))["alg"], "ES256")
        c = json.loads(base64.urlsafe_b64decode(pad(claims)))
        self.assertEqual(c["sub"], "system:serviceaccount:tok:default")
        self.assertEqual(c["aud"], ["https://kubernetes.default.svc.cluster.local"])
        self.assertAlmostEqual(c["exp"] - c["iat"], 3600, delta=2)
        who = json.loads(self.as_token(token, "auth", "whoami", "-o", "json").stdout)
        self.assertEqual(who["status"]["userInfo"]["username"], "system:serviceaccount:tok:default")
        self.assertIn("system:serviceaccounts:tok", who["status"]["userInfo"]["groups"])
        self.assertEqual(self.as_token(token, "-n", "tok", "get", "sa", "-o", "name").stdout.strip(),
                         "serviceaccount/default")
        # The client certificate's user, for comparison.
        me = json.loads(k("auth", "whoami", "-o", "json").stdout)
        self.assertNotEqual(me["status"]["userInfo"]["username"], "system:serviceaccount:tok:default")

        # Forged, expired-looking and garbage tokens are refused with 401.
        forged = header + "." + base64.urlsafe_b64encode(json.dumps(dict(c, sub="system:serviceaccount:kube-system:admin")).encode()).decode().rstrip("=") + "." + token.split(".")[2]
        for bad in [forged, "not-a-token", token[:-4] + "AAAA"]:
            r = self.as_token(bad, "get", "ns")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("Unauthorized", r.stderr)

        # Too short a lifetime is invalid, as in Kubernetes.
        r = k("-n", "tok", "create", "token", "default", "--duration=1m", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("may not specify a duration less than 10 minutes", r.stderr)
        r = k("-n", "tok", "create", "token", "nobody", check=False)
        self.assertIn('serviceaccounts "nobody" not found', r.stderr)

        # A token bound to a pod dies with the pod.
        k("-n", "tok", "run", "holder", "--image=busybox", "--restart=Never")
        pod = self.c.kubectl_json("-n", "tok", "get", "pod", "holder")
        # The pod got its account's token volume mounted in every container.
        vols = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
        self.assertEqual(len(vols), 1)
        sources = vols[0]["projected"]["sources"]
        self.assertEqual(sources[0]["serviceAccountToken"]["path"], "token")
        self.assertEqual(sources[1]["configMap"]["name"], "kube-root-ca.crt")
        self.assertIn({"name": vols[0]["name"], "readOnly": True,
                       "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                      pod["spec"]["containers"][0]["volumeMounts"])
        bound = k("-n", "tok", "create", "token", "default", "--bound-object-kind=Pod",
                  "--bound-object-name=holder", "--bound-object-uid=" + pod["metadata"]["uid"]).stdout.strip()
        self.assertEqual(self.as_token(bound, "-n", "tok", "get", "pod", "holder", "-o", "name").returncode, 0)
        k("-n", "tok", "delete", "pod", "holder", "--grace-period=0", "--force")
        r = self.as_token(bound, "-n", "tok", "get", "pods")
        self.assertIn("Unauthorized", r.stderr)
        # ... and every token of an account dies with the account.
        k("-n", "tok", "delete", "sa", "default")
        self.assertIn("Unauthorized", self.as_token(token, "get", "ns").stderr)
        # A pod that opts out gets no token.
        k("-n", "tok", "apply", "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  automountServiceAccountToken: false
  containers: [{name: c, image: busybox}]
""")
        self.assertNotIn("volumes", self.c.kubectl_json("-n", "tok", "get", "pod", "quiet")["spec"])
        k("delete", "namespace", "tok", "--wait=false")

    def test_zz_stop_and_start_keep_every_object(self):
        k = self.c.kubectl
        k("create", "namespace", "keep")
        k("-n", "keep", "create", "configmap", "kept", "--from-literal=a=1")
        k("-n", "keep", "create", "deployment", "kd", "--image=nginx")
        before = self.c.kubectl_json("get", "configmaps,deployments,services,namespaces", "-A")
        self.c.minik("stop")
        r = self.c.minik("status", check=False)
        self.assertEqual(r.returncode, 7, r.stdout + r.stderr)
        self.assertIn("host: Stopped", r.stdout)
        self.assertNotEqual(k("get", "ns", check=False, timeout=30).returncode, 0)
        self.c.minik("start")
        self.assertIn("apiserver: Running", self.c.minik("status").stdout)
        after = self.c.kubectl_json("get", "configmaps,deployments,services,namespaces", "-A")
        key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"], o["metadata"]["uid"], o["metadata"]["resourceVersion"])
        self.assertEqual(sorted(map(key, before["items"])), sorted(map(key, after["items"])))


if __name__ == "__main__":
    unittest.main(verbosity=2)
