"""Benchmarks on real data: the real-text sets, the scikit-learn reference and make quality."""
