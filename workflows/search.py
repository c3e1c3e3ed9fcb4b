"""The custom search attribute that lists clusters by health in the Temporal UI."""

from temporalio.common import SearchAttributeKey

CLUSTER_STATE = SearchAttributeKey.for_keyword("ClusterState")
MANUAL_INTERVENTION = "ManualIntervention"  # the ClusterState value while automation waits
