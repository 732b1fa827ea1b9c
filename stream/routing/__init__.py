"""Alert routing (``gridalarm notify``): the alerts topic → Alertmanager and JSON webhooks.

Pure parts: :mod:`.targets` (what ``--to`` names), :mod:`.alertmanager` (an alert message as
Alertmanager's v2 API takes it) and :mod:`.backoff` (when to try again). The shell:
:mod:`.delivery` (HTTP with retries) and :mod:`.notifier` (the consumer loop that commits an
offset only after every target accepted its message).
"""
