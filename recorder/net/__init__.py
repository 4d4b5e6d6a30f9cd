"""The network layer under Trio: WebSocket client, frame splitter, REST client, rate limiters.

- ``_ws.py``: a minimal wsproto client that stamps each frame's receive time;
- ``_wsframes.py``: complete data frames cut out of the read buffer ahead of wsproto (sans-IO);
- ``_rest.py``: REST requests within the exchange's weight budget;
- ``_limiter.py``: exact rolling-window limits on what we send.
"""
