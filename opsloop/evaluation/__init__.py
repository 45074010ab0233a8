"""Evaluation of detectors against labelled benchmarks (the Numenta Anomaly Benchmark score)."""
