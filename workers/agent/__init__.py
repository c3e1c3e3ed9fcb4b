"""The node agent: one beside each mariadbd, in both runtimes, and the only way to touch a node.

It serves the node agent API (docs/agent-api.md): start (join or bootstrap, always from the
recovered position), stop, process facts, the Galera position, set data aside, backup and
restore streams, free disk, and the probes. It starts mariadbd as its child (so it knows how it
ended: exit status or signal), probes it over the local socket four times a second, answers
HAProxy's check and the kubelet's probes, and reports every state transition to the cluster
workflow as a signal. When the node stops serving the agent takes it out of HAProxy at once.

The agent outlives the runs of its node: when mariadbd ends, the agent records how and waits
for the controller's next order. A restarted agent (a Pod's container restarted by the
kubelet) never bootstraps by itself: it adopts a mariadbd still running, follows a persisted
order, stays down when the controller stopped the node, or otherwise rejoins when a peer
serves (a Primary component exists) and else waits for an order.

`python -m workers.agent NODE_DIR` (the node directory holds agent.json).
"""
