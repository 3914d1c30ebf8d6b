"""A two-node Ray cluster on this machine (ray.cluster_utils), for the multi-node test.

Prints the cluster address, waits for a line on stdin, then prints JSON {class name: [node
ids]} of every actor the cluster ran, and shuts the cluster down.
"""

import json
import sys

import ray
from ray._private.state import actors
from ray.cluster_utils import Cluster

if __name__ == "__main__":
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    print(cluster.address, flush=True)
    sys.stdin.readline()
    placed: dict[str, list[str]] = {}
    for info in actors().values():
        placed.setdefault(info["ActorClassName"], []).append(info["Address"]["NodeID"])
    print(json.dumps(placed), flush=True)
    ray.shutdown()
    cluster.shutdown()
