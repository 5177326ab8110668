"""AKOOL's wire numbers, named once: result statuses and envelope codes (akool-api.md §1, §2).

A leaf module so that both sides of the wire share it: the AKOOL provider (run/providers/akool.py)
that reads them and the emulator that writes them; the emulator may not import run/. Nothing
outside those two should need these numbers: the rest of i2v speaks model.JobStatus.
"""

from __future__ import annotations

from typing import Final

# result status of one video (resultsByIds `status`, webhook `status`)
STATUS_QUEUED: Final = 1
STATUS_PROCESSING: Final = 2
STATUS_SUCCEEDED: Final = 3
STATUS_FAILED: Final = 4
STATUSES: Final = frozenset({STATUS_QUEUED, STATUS_PROCESSING, STATUS_SUCCEEDED, STATUS_FAILED})

# envelope `code`
OK: Final = 1000
PARAM_ERROR: Final = 1003
THROTTLED: Final = 1005
NOT_FOUND: Final = 1008
TRY_AGAIN: Final = 1015
INVALID_TOKEN: Final = 1101
NO_AUTHORIZATION: Final = 1102
NOT_PAID: Final = 1103
NO_CREDIT: Final = 1104
QUOTA_EXHAUSTED: Final = 1006
NO_ACCOUNT: Final = 1109
ACCOUNT_BANNED: Final = 1200
AUTH_CODES: Final = frozenset(
    {INVALID_TOKEN, NO_AUTHORIZATION, NOT_PAID, NO_ACCOUNT, ACCOUNT_BANNED}
)
CREDIT_CODES: Final = frozenset({NO_CREDIT, QUOTA_EXHAUSTED})
