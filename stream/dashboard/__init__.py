"""The live web dashboard (``gridalarm dashboard``): overview of every stream, stream pages,
alerts with feedback buttons, updated over server-sent events.

Pure parts (no Kafka, no HTTP): :mod:`.series` (a stream's recent windows), :mod:`.state` (what
the dashboard knows), :mod:`.charts` and :mod:`.pages` (SVG and HTML), :mod:`.access` (bind and
auth rules), :mod:`.live` (coalesced server-sent events). Shell: :mod:`.feed` (the Kafka reader)
and :mod:`.server` (aiohttp).
"""
