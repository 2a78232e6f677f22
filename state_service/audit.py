"""The audit of the transition log: the database against its seals and its checkpoints."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from state_service.checkpoints import check_sequence, list_checkpoints, merged_rows
from state_service.verify import CannotVerify, Verification, verify_database


def verify_log(dsn: str, keyring: Mapping[str, bytes], s3=None, bucket: str | None = None,
               progress: Callable[[int], None] = lambda n: None) -> Verification:
    """Verify the log at ``dsn``; with ``s3``, against every checkpoint in ``bucket``."""
    findings, files = [], []
    checkpoints = []
    if s3 is not None:
        try:
            checkpoints = list_checkpoints(s3, bucket)
            findings, files = check_sequence(checkpoints, s3, bucket, keyring)
        except Exception as exc:  # noqa: BLE001 - any failure to read them means "could not check"
            raise CannotVerify(f"the checkpoints in s3://{bucket} could not be read: "
                               f"{exc.__class__.__name__}: {exc}") from exc
    try:
        result = verify_database(dsn, keyring, merged_rows(files), progress)
    finally:
        for _, path in files:
            os.unlink(path)
    result.findings = findings + result.findings
    result.checkpoints = len(checkpoints)
    return result
