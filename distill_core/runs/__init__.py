"""Runs: one experiment end to end, the teacher cache, the run store and its recording, the
results reader, process liveness, and the app's background job manager."""
