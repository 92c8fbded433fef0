"""How long after a rollout becomes ready does the waiting client say so?

A thread watches the backend Deployment on the (simulated) API server and notes the moment
its status first shows the new template fully rolled out; the client under test runs at the
same time and we note when it reports readiness (`shopctl apply --wait` prints a line per
workload on a non-terminal stderr; `kubectl rollout status` exits). Both instants come from
this process's monotonic clock. Usage: cluster-wait-latency.py SHOPCTL SERVER KUBECONFIG WORKDIR
"""

import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

shopctl, server, kubeconfig, work = sys.argv[1:5]
DEPLOYMENT = f"{server}/apis/apps/v1/namespaces/shopmicro/deployments"


def rolled_out(d, tag):
    s, spec = d.get("status", {}), d["spec"]
    image = spec["template"]["spec"]["containers"][0]["image"]
    want = spec.get("replicas", 1)
    return (image.endswith(":" + tag)
            and s.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and s.get("updatedReplicas") == want and s.get("availableReplicas") == want
            and s.get("replicas") == want)


def watch_ready(tag, found):
    version = json.load(urllib.request.urlopen(DEPLOYMENT + "/backend"))["metadata"]["resourceVersion"]
    url = f"{DEPLOYMENT}?watch=1&fieldSelector=metadata.name%3Dbackend&resourceVersion={version}&timeoutSeconds=60"
    with urllib.request.urlopen(url) as stream:
        for line in stream:
            if rolled_out(json.loads(line)["object"], tag):
                found.append(time.monotonic())
                return


def measure(tag, client):
    found = []
    watcher = threading.Thread(target=watch_ready, args=(tag, found))
    watcher.start()
    time.sleep(0.2)  # the watch is established before the change is made
    reported = client(tag)
    watcher.join()
    return reported - found[0]


def shopctl_wait(tag):
    proc = subprocess.Popen([shopctl, "apply", "--env", "dev", "--set", f"services.backend.tag={tag}",
                             "--wait", "--timeout", "60s"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    reported = None
    for line in proc.stderr:
        if line.startswith("Deployment/shopmicro/backend ready"):
            reported = time.monotonic()
    proc.wait()
    return reported


def kubectl_wait(tag):
    subprocess.run([shopctl, "apply", "--env", "dev", "--set", f"services.backend.tag={tag}"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "-n", "shopmicro", "rollout", "status",
                    "deployment/backend", "--timeout=60s"], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic()


for name, client in [("shopctl apply --wait", shopctl_wait), ("kubectl rollout status", kubectl_wait)]:
    delays = [measure(f"latency-{name[:7]}-{i}", client) * 1000 for i in range(10)]
    print(f"{name}: ready → reported, ms over 10 rollouts: median {statistics.median(delays):.1f}, "
          f"min {min(delays):.1f}, max {max(delays):.1f}")
