"""Audit checkpoints: every hour (at a quarter past, UTC) the timer signs the audit chain's head and the hash of
every entry since the last checkpoint with the Key Vault audit key, and stores it where it cannot be overwritten.
A thin adapter over shared/platform/checkpoints.py; `python -m shared.cli verify-audit` checks the result."""

import logging
from functools import lru_cache

import azure.functions as func

from shared.platform.checkpoints import AuditBrokenError, AuditCheckpoints, AuditKey, audit_key_from_settings
from shared.platform.settings import Settings
from shared.runtime import platform

bp = func.Blueprint()


@lru_cache(maxsize=1)
def _audit_key(settings: Settings) -> AuditKey | None:
    return audit_key_from_settings(settings)


@bp.function_name("audit_checkpoint")
@bp.timer_trigger(schedule="0 15 * * * *", arg_name="timer", use_monitor=True)
def checkpoint(timer: func.TimerRequest) -> None:
    current = platform()
    key = _audit_key(current.settings)
    if key is None:  # local development without FDP_LOCAL_AUDIT_KEY_FILE; in Azure the settings refuse this
        logging.warning("audit checkpoints are off: set FDP_LOCAL_AUDIT_KEY_FILE to sign them locally")
        return
    try:
        written = AuditCheckpoints(current.storage, key).write()
    except AuditBrokenError as error:  # entry numbers only: fails the run, which is what the alert watches
        logging.error("audit chain broken, no checkpoint signed: %s", error)
        raise
    if written.checkpoint is None:
        logging.info("audit checkpoint: nothing appended since the last one")
        return
    logging.info("audit checkpoint %s: entries %d to %d", written.checkpoint.name, written.checkpoint.first,
                 written.checkpoint.count)
    for problem in written.problems:
        logging.error("audit checkpoint signed over a broken chain: %s", problem)
