"""Local stand-in for the Functions host's queue trigger: hands each waiting message to its function.

    python -m devtools.queues   # process the rights-request work queue once
"""

from __future__ import annotations

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


if __name__ == "__main__":
    print(f"processed {drain(Storage.from_settings(Settings.from_env()))} message(s)")
