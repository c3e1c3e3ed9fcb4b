"""Which backups a retention policy removes. The newest backup is never one of them: a policy
cannot leave a cluster without a good backup."""

from datetime import datetime

from api.backup import BackupManifest, RetentionSpec, duration


def expired(backups: list[BackupManifest], policy: RetentionSpec, now: datetime) -> list[str]:
    """Names to delete, from `backups` (any order): beyond `keep_last`, or older than
    `max_age`, always sparing the newest."""
    newest_first = sorted(backups, key=lambda m: (m.finished_at, m.name), reverse=True)
    doomed = []
    for index, backup in enumerate(newest_first[1:], start=1):
        too_many = policy.keep_last is not None and index >= policy.keep_last
        too_old = policy.max_age is not None and now - backup.finished_at > duration(policy.max_age)
        if too_many or too_old:
            doomed.append(backup.name)
    return doomed
