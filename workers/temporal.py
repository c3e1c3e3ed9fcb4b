"""How every mysqlops process reaches Temporal: address, namespace, task queue, converter."""

import os

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

TASK_QUEUE = "mysqlops"


def address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")


def namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE", "default")


async def connect() -> Client:
    return await Client.connect(
        address(), namespace=namespace(), data_converter=pydantic_data_converter
    )
