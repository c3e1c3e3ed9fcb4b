"""How mysqlops processes reach the Kubernetes API: the official client's asyncio flavour
(`kubernetes.aio`), configured from the pod's service account or a kubeconfig.

The names of our resources live here too, so every caller spells them the same way.
"""

import os
from typing import Any

from kubernetes.aio import client, config

from api.crd import GROUP, VERSION

ApiClient = client.ApiClient
ApiException = client.ApiException

PLURALS = {
    "MySQLCluster": "mysqlclusters",
    "MySQLBackup": "mysqlbackups",
    "MySQLRestore": "mysqlrestores",
}
API_VERSION = f"{GROUP}/{VERSION}"
IN_CLUSTER = "KUBERNETES_SERVICE_HOST"


async def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In a pod (and no kubeconfig named): its service account. Otherwise the kubeconfig
    named, else `KUBECONFIG`, else `~/.kube/config`."""
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get(IN_CLUSTER):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    return client.ApiClient(configuration)


def has_config(kubeconfig: str | None = None) -> bool:
    """Whether this process can reach an API server at all."""
    named = kubeconfig or os.environ.get("KUBECONFIG")
    default = os.path.expanduser("~/.kube/config")
    return bool(
        os.environ.get(IN_CLUSTER) or (named and os.path.exists(named)) or os.path.exists(default)
    )


def as_object(answer: object) -> dict[str, Any]:
    """The custom objects API answers a JSON object, typed as `object`."""
    if not isinstance(answer, dict):
        raise TypeError(f"the API server answered {type(answer).__name__}, not an object")
    return answer


def missing(error: BaseException) -> bool:
    return isinstance(error, client.ApiException) and error.status == 404


def conflict(error: BaseException) -> bool:
    return isinstance(error, client.ApiException) and error.status == 409
