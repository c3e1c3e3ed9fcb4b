"""Which backups retention deletes, and why the others stay.

The rules, in order:
1. The newest backup of the cluster whose stored object *verifies* (its size and sha256 are
   what its manifest says) is never deleted, whatever else says so. Candidates are taken newest
   first (`finished_at`, then name) and verified until the first good one: a newer backup that
   is missing, truncated, corrupted or unreadable is reported (`unverified`, with why), never
   taken for good. When no backup verifies, nothing at all is deleted.
2. Scheduled backups (trigger `schedule`) follow the cluster's `spec.backup.retention`: only
   they are counted for `keepLast`, and those beyond it or older than `maxAge` are deleted.
3. Manual backups (`mysqlops backup`, a `MySQLBackup`; trigger `manual`) follow their own
   policy: one whose `keepFor` has passed (its manifest's `expires_at`) is deleted; one without
   is kept until it is deleted by hand. The cluster's retention never counts or deletes them.
"""

from collections.abc import Callable
from datetime import datetime

from activities.backup.storage import BackupNotFound, StorageError
from api.backup import BackupManifest, BackupTrigger, RetentionResult, RetentionSpec, duration

# Checks one backup's stored object: returns when it is good, raises (`StorageError`,
# `BackupNotFound`, `OSError`) saying what is wrong otherwise. `storage.verify` in production.
Verify = Callable[[BackupManifest], None]


def newest_first(backups: list[BackupManifest]) -> list[BackupManifest]:
    return sorted(backups, key=lambda m: (m.finished_at, m.name), reverse=True)


def due(backups: list[BackupManifest], policy: RetentionSpec, now: datetime) -> dict[str, str]:
    """The backups the rules let go (rules 2 and 3, the newest good one not yet spared), each
    with why, newest first."""
    reasons: dict[str, str] = {}
    max_age = duration(policy.max_age) if policy.max_age is not None else None
    scheduled = 0
    for backup in newest_first(backups):
        if backup.trigger is BackupTrigger.SCHEDULE:
            scheduled += 1
            if policy.keep_last is not None and scheduled > policy.keep_last:
                reasons[backup.name] = f"scheduled, beyond keepLast {policy.keep_last}"
            elif max_age is not None and now - backup.finished_at > max_age:
                reasons[backup.name] = f"scheduled, older than maxAge {policy.max_age}"
        elif backup.expires_at is not None and now >= backup.expires_at:
            reasons[backup.name] = (
                f"manual, its keepFor ended at {backup.expires_at:%Y-%m-%d %H:%M}"
            )
    return reasons


def newest_good(
    backups: list[BackupManifest], verify: Verify
) -> tuple[BackupManifest | None, dict[str, str]]:
    """The newest backup that verifies (None: none does), and the newer ones that do not, with
    why. Only the candidates down to the first good one are verified: hashing costs time."""
    unverified: dict[str, str] = {}
    for backup in newest_first(backups):
        try:
            verify(backup)
        except (StorageError, BackupNotFound, OSError) as error:
            unverified[backup.name] = str(error)
            continue
        return backup, unverified
    return None, unverified


def retain(
    backups: list[BackupManifest], policy: RetentionSpec, now: datetime, verify: Verify
) -> RetentionResult:
    """What to delete from `backups` (any order) and what to report; deletes nothing itself."""
    good, unverified = newest_good(backups, verify)
    result = RetentionResult(newest_good=good.name if good else None, unverified=unverified)
    for name, why in due(backups, policy, now).items():
        if good is None:
            result.spared[name] = f"{why}; but no backup verifies, so none is deleted"
        elif name == good.name:
            result.spared[name] = f"{why}; but it is the newest backup that verifies"
        else:
            result.deleted.append(name)
    return result
