"""The server's HTTP port: Prometheus metrics (``/metrics``) and the web dashboard, in the server's process.

`server.WebServer` serves both with aiohttp on the server's event loop. Who may see what is the public
API's rule: the dashboard's pages sign in with an account key (a session cookie then stands for it) and read
through the public gRPC API with that key, so a page shows exactly what the account's own client would.
"""
