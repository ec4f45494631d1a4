"""Local stand-in for the Functions host's queue trigger: hands each waiting message to its function.

    python -m devtools.queues   # process the rights-request work queue once
    (`python -m devtools.localhost --watch` keeps doing it, as the host would)
"""

from __future__ import annotations

import logging
import threading

import azure.functions as func

from devtools.eventgrid import indexed_functions
from shared.platform.settings import Settings
from shared.platform.storage import RIGHTS_QUEUE, Storage

QUEUE_FUNCTIONS = {RIGHTS_QUEUE: "rights_worker"}


def drain(storage: Storage, queue: str = RIGHTS_QUEUE) -> int:
    """Deliver every message waiting on the queue, as the host would; returns how many were processed."""
    client = storage.queue(queue)
    handled = 0
    while messages := list(client.receive_messages(max_messages=32, visibility_timeout=300)):
        for message in messages:
            indexed_functions()[QUEUE_FUNCTIONS[queue]].get_user_function()(func.QueueMessage(
                id=message.id, body=message.content.encode(), pop_receipt=message.pop_receipt))
            client.delete_message(message)
            handled += 1
    return handled


def work(storage: Storage, stop: threading.Event, interval: float = 1.0) -> None:
    """Keep draining the queue until `stop` is set: the queue trigger's part, for the local host."""
    while not stop.is_set():
        try:
            drain(storage)
        except Exception:  # the host would retry the message: so do we, on the next pass
            logging.exception("queued work failed; retrying")
        stop.wait(interval)


if __name__ == "__main__":
    print(f"processed {drain(Storage.from_settings(Settings.from_env()))} message(s)")
