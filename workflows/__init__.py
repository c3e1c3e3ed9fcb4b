"""Temporal workflows: the per-cluster controller and its pure decision logic."""
