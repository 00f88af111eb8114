"""Where a server leaves, and a client finds, the credentials of a server under ``$SHOAL_HOME``.

Shared by both sides: the server writes these files (mode 0600), the client reads them.
"""

from __future__ import annotations

#: The credentials of the server started last.
CREDENTIALS_FILE = "credentials.json"
#: A directory of each server's credentials, by address.
SERVERS_DIR = "servers"


def server_file_name(address: str) -> str:
    """The name of the file under ``$SHOAL_HOME/servers`` that keeps the credentials for `address`."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in address) + ".json"
