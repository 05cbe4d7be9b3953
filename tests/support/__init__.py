"""Helpers shared by the tests: free ports and test-owned service processes."""
