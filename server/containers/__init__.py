"""Container tasks on the server: registry credentials kept apart from the records that gave them
(`credentials`), and what nodes are sent of a pool's and a task's containers (`agents`)."""
