"""`minik start|status|stop|delete|version` and `--help`, as a user runs them."""

import os
import subprocess
import unittest

from cluster import MINIK, Cluster


class CliTest(unittest.TestCase):
    def test_every_command_has_help(self):
        for cmd in ["start", "stop", "status", "delete", "version", "apiserver", "node-agent", "service", "tunnel", "proxy", "dns",
                    "kubelet", "controller-manager", "scheduler", "image"]:
            r = subprocess.run([MINIK, cmd, "--help"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("Usage:", r.stdout + r.stderr)

    def test_unknown_profile_and_driver_errors_say_what_to_do(self):
        c = Cluster("nope")
        try:
            r = c.minik("status", check=False)
            self.assertEqual(r.returncode, 85)
            self.assertIn("minik start -p nope", r.stderr)
            r = c.minik("start", "--driver", "warp", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("unknown driver 'warp'", r.stderr)
            r = subprocess.run([MINIK, "start", "-p", "Bad_Name"], env=c.env, capture_output=True, text=True)
            self.assertIn("invalid profile name", r.stderr)
            for bad, says in [("kubelet.no-such-flag=1", "the kubelet has no flag --no-such-flag"),
                              ("etcd.quota=1", 'unknown component "etcd"'),
                              ("kubelet", "expected COMPONENT.FLAG=VALUE")]:
                r = c.minik("start", "--extra-config", bad, check=False)
                self.assertEqual(r.returncode, 2, bad)
                self.assertIn(says, r.stderr)
            self.assertFalse(os.path.exists(os.path.join(c.env["MINIK_HOME"], "profiles", "nope")))
        finally:
            c.delete()

    def test_lifecycle_and_kubeconfig_merge(self):
        c = Cluster("life")
        try:
            os.makedirs(c.dir, exist_ok=True)
            with open(c.env["KUBECONFIG"], "w") as f:
                f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: 'https://10.0.0.1:6443'}\n"
                        "contexts:\n- name: other\n  context: {cluster: other, user: other}\ncurrent-context: other\n"
                        "users:\n- name: other\n  user: {token: abc}\n")
            out = c.start("--no-kubelet").stdout
            for step in ["Preparing profile", "Starting the node", "Waiting for the API server", "Configuring kubectl"]:
                self.assertIn(step, out)
            cfg = c.kubectl("config", "view", "-o", "jsonpath={.current-context} {.clusters[*].name}").stdout
            self.assertEqual(cfg, "life life other")  # kubectl sorts clusters by name
            key = os.path.join(c.env["MINIK_HOME"], "profiles", "life", "client.key")
            self.assertEqual(oct(os.stat(key).st_mode & 0o777), "0o600")
            self.assertEqual(oct(os.stat(os.path.join(c.env["MINIK_HOME"], "ca.key")).st_mode & 0o777), "0o600")
            st = c.minik("status")
            self.assertIn("host: Running", st.stdout)
            self.assertIn("apiserver: Running", st.stdout)
            self.assertIn("kubeconfig: Configured", st.stdout)
            # Starting a running cluster again is harmless.
            c.start()
            c.minik("delete")
            cfg = c.kubectl("config", "view", "-o", "jsonpath={.clusters[*].name}").stdout
            self.assertEqual(cfg, "other")
            self.assertFalse(os.path.exists(os.path.join(c.env["MINIK_HOME"], "profiles", "life")))
            self.assertEqual(c.minik("status", check=False).returncode, 85)
        finally:
            c.delete()

    def test_version(self):
        r = subprocess.run([MINIK, "version"], capture_output=True, text=True)
        self.assertIn("minik version: v", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
