"""An in-memory Runtime scripted by tests and benchmarks, shareable between processes."""
