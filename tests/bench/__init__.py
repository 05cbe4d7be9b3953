"""Smoke tests of the benchmarks: they run in their quick mode and print their figures."""
