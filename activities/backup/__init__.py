"""Backups: the xbstream scanner, the storage backends and the backup and restore activities."""
