"""What the platform may say about an upload's name, and which names it cannot process.

A partner chooses the name of every file it uploads, and may name one after a child (`oliver-smith.csv`). The
name as given is never stored or logged: receipts, the ledger and the audit log hold a rendering of it
(`shown_name`), which is the name itself only where it passes a strict rule, and otherwise the dataset's folder,
`[name withheld]` and the extension. With the upload's time and size beside it on the receipt, that is enough for a
partner to recognise the upload. The Azure SDK logs the URL of every request it sends, and a raw file's URL holds
its name, so those log lines have the path after the drop zone replaced (`redact_sdk_urls`).

The strict rule: the whole name is at most 120 characters of ASCII letters, digits, spaces and `._-()/`; the upload
page's timestamp (`20251003T102233`) is set aside; the rest is cut into tokens at every other character, and each
token is either a short code (`q1` to `q4`; `v`, `wk` or `y` and one or two digits; `t` and one digit; `fy24`,
`fy2024`) or, cut again at each change between letters and digits, made only of
- words of FILE_WORDS (file and reporting words, months that are not also given names, and the column words of
  `contracts.COLUMN_WORDS`) or of the partner's dataset names (`health-visits`: health, visits);
- numbers of at most four digits (a year, a month, a version), or dates YYYYMMDD or YYYYMM.
So `sessions/20251003T102233-october-sessions.csv` and `visits/2025-10 export v2.xlsx` are shown as they are;
`sessions/oliver-smith.csv`, `sessions/9434765919.csv` (an NHS number) and `sessions/bluebell.csv` (a word
outside the list, however harmless) are shown as `sessions/[name withheld].csv`.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from shared.policy.contracts import COLUMN_WORDS, words_of

WITHHELD = "[name withheld]"
EXTENSIONS = ("csv", "xlsx", "xls", "xlsm", "txt", "tsv")
FILE_WORDS = COLUMN_WORDS | words_of("""
    data export exports exported extract extracts upload uploads uploaded file files final draft report reports return
    returns submission submissions list records record rows sheet dataset datasets update updated corrected
    correction corrections resend resent resubmission amended copy part batch new latest full partial test sample
    weekly monthly quarterly annual yearly daily term terms half academic spring
    january february march july september october november december feb mar apr jul aug sep sept oct nov dec
""") | frozenset(EXTENSIONS)
"""Words a file name may hold and still be shown. No given name or common surname (tests check them against the
nicknames package's names and the synthetic generator's): April, May, June, August, Jan, Summer, Autumn and
Winter are all left out, so a file named after a month that is also a name is withheld."""
_CHARACTERS = re.compile(r"^[A-Za-z0-9 ._\-()/]{1,120}$")
_WORDS = re.compile(r"[A-Za-z]+|[0-9]+")
_CODE = re.compile(r"^(q[1-4]|v[0-9]{1,2}|wk[0-9]{1,2}|y[0-9]{1,2}|t[0-9]|fy[0-9]{2}|fy[0-9]{4})$")
_STAMP = re.compile(r"(?<![0-9A-Za-z])([0-9]{8})T([0-9]{6})(?![0-9A-Za-z])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown_name(blob: str, datasets: tuple[str, ...] | list[str] = ()) -> str:
    """The upload's name as receipts, the ledger and the audit log may hold it: itself where it passes the strict
    rule, otherwise `<dataset folder>/[name withheld].<extension>` (the folder only if it is an agreed dataset)."""
    if name_is_safe(blob, datasets):
        return blob
    folder, _, rest = blob.partition("/") if "/" in blob else ("", "", blob)
    extension = rest.rsplit(".", 1)[1].lower() if "." in rest else ""
    shown = f"{WITHHELD}.{extension}" if extension in EXTENSIONS else WITHHELD
    return f"{folder}/{shown}" if folder in datasets else shown


def name_is_safe(blob: str, datasets: tuple[str, ...] | list[str] = ()) -> bool:
    if not _CHARACTERS.match(blob):
        return False
    vocabulary = FILE_WORDS | {word for name in datasets for word in re.split(r"[^a-z0-9]+", name) if word}
    text = _STAMP.sub(lambda stamp: " " if _valid_stamp(stamp[1], stamp[2]) else stamp[0], blob)
    for token in re.split(r"[^A-Za-z0-9]+", text):
        if token and not _CODE.match(token.lower()) and not all(
                _word_is_safe(word, vocabulary) for word in _WORDS.findall(token)):
            return False
    return True


def _word_is_safe(word: str, vocabulary: frozenset[str] | set[str]) -> bool:
    if word.isdigit():
        return len(word) <= 4 or (len(word) in (6, 8) and _valid_date(word))
    return word.lower() in vocabulary


def _valid_date(digits: str) -> bool:
    try:
        datetime.strptime(digits, "%Y%m%d" if len(digits) == 8 else "%Y%m")
    except ValueError:
        return False
    return True


def _valid_stamp(day: str, time: str) -> bool:
    try:
        datetime.strptime(day + time, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def unprocessable(blob: str) -> str | None:
    """Why the platform cannot read a blob of this name, or None. Storage accepts a name with a `.` or `..`
    folder when a client percent-encodes it (`sessions/%2E%2E/x.csv`), but every request the SDK then sends for
    it is normalised to another path and refused; control characters and a name ending in `.` or `/` are
    refused or changed by some clients. Such a file is rejected from its event alone, without reading it."""
    segments = blob.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "a folder in the file's name is . or .."
    if _CONTROL.search(blob):
        return "the file's name holds a control character"
    if blob.endswith((".", "/")):
        return "the file's name ends with . or /"
    return None


class _RedactUploadNames(logging.Filter):
    """Replaces the blob path of any drop zone URL in a log record by `[name withheld]`."""

    _URL = re.compile(r"(/drop-[a-z0-9-]+)/[^?'\"\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._URL.sub(rf"\1/{WITHHELD}", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: self._redact(arg) for key, arg in record.args.items()}
        return True

    def _redact(self, arg: object) -> object:
        return self._URL.sub(rf"\1/{WITHHELD}", arg) if isinstance(arg, str) else arg


_REDACTOR = _RedactUploadNames()


def redact_sdk_urls() -> None:
    """Attach the filter to the loggers that write request URLs: the Azure SDK's (INFO) and urllib3's (DEBUG).
    Once per process; safe to call again."""
    for name in ("azure.core.pipeline.policies.http_logging_policy", "urllib3.connectionpool"):
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
