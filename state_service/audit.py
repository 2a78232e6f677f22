"""The audit of the transition log: the database against its seals and its checkpoints."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from state_service.checkpoints import check_sequence, list_checkpoints, merged_rows
from state_service.verify import CannotVerify, Verification, verify_database


def verify_log(dsn: str, keyring: Mapping[str, bytes], s3=None, bucket: str | None = None,
               progress: Callable[[int], None] = lambda n: None,
               since: int | None = None) -> Verification:
    """Verify the log at ``dsn``; with ``s3``, against every checkpoint in ``bucket``.

    ``since``: the number of a checkpoint; only the tokens written to after its snapshot are
    verified (each one whole). That is the daily run; it cannot see a token erased whole, which
    the full run does."""
    findings, files = [], []
    checkpoints = []
    if s3 is not None:
        try:
            checkpoints = list_checkpoints(s3, bucket)
            findings, files = check_sequence(checkpoints, s3, bucket, keyring)
        except Exception as exc:  # noqa: BLE001 - any failure to read them means "could not check"
            raise CannotVerify(f"the checkpoints in s3://{bucket} could not be read: "
                               f"{exc.__class__.__name__}: {exc}") from exc
    since_xact = None
    if since is not None:
        found = [cp for cp in checkpoints if cp.seq == since]
        if not found:
            raise CannotVerify(f"--since {since}: there is no checkpoint {since}")
        since_xact = found[0].xact_to
    try:
        result = verify_database(dsn, keyring, merged_rows(files), progress, since_xact)
    finally:
        for _, path in files:
            os.unlink(path)
    result.findings = findings + result.findings
    result.checkpoints = len(checkpoints)
    return result
