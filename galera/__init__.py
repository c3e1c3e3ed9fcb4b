"""Galera domain logic, pure and free of Temporal: node and cluster states, fault diagnosis,
the choice of a bootstrap node, the rules for forced actions, committed positions and what a
node's error log says about how it joined. The workflows, the activities and the node agent
all import it; it imports only `api`."""
