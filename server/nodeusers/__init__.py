"""Node users (Batch's compute node users): login accounts on one node, kept by the server, made by its agent."""
