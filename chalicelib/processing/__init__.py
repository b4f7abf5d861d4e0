"""The processing service's port: what the worker asks of whoever turns a photo into a 3D model.

Image-to-3D services (Replicate, Meshy, fal, Tripo) share one shape: submit an input URL and get a task id, read a
task's state, progress and output URLs, cancel it. Each provider is one class with these four verbs; the worker
(chalicelib/worker.py) knows only them. `replicate.Replicate` is the production adapter; in development and in the
tests it speaks to devstack/processing_service.py, which answers Replicate's HTTP API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

# A task's states, the same for every provider.
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})


@dataclass(frozen=True)
class Task:
    """One task as the provider reports it. `error` is the provider's own text: for the log, never the user."""

    id: str
    state: str
    progress: Optional[int] = None
    preview_url: Optional[str] = None
    model_url: Optional[str] = None
    error: Optional[str] = None


@dataclass(frozen=True)
class Output:
    """An output's bytes, fetched within the size ceiling, and the type its server claimed."""

    data: bytes
    content_type: str


class ProcessingService(Protocol):
    """Raise errors.ProcessingUnavailable when the service does not answer usefully after the adapter's retries,
    errors.BadProcessingOutput when an output is not what it claims or is larger than allowed."""

    def submit(self, input_url: str) -> str: ...

    def get(self, task_id: str) -> Task: ...

    def cancel(self, task_id: str) -> None: ...

    def download(self, url: str, max_bytes: int) -> Output: ...
