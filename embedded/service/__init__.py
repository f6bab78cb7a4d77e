"""The stack's local API: the server the stack process runs (`ApiServer`), the client every other process
uses (`StackClient`), and `RemoteStack`, the Stack-shaped view of a running stack the panel attaches to."""

from stalk.embedded.service.client import ApiError, StackClient
from stalk.embedded.service.guard import TOKEN_HEADER
from stalk.embedded.service.launch import StackProcess, wait_gone, watch_starter
from stalk.embedded.service.remote import RemoteStack
from stalk.embedded.service.task_types import TaskType, describe_task

__all__ = ["ApiError", "RemoteStack", "StackClient", "StackProcess", "TOKEN_HEADER", "TaskType", "describe_task",
           "wait_gone", "watch_starter"]
