"""Singer message intake: stdin in blocks, RECORD runs as Arrow, BATCH files, a sink's buffer."""
