"""The privileged assessment daemon (``rba daemon``).

- :mod:`behavior.daemon.config`: the TOML configuration, validated at start and on SIGHUP.
- :mod:`behavior.daemon.protocol`: the control socket's request/response framing.
- :mod:`behavior.daemon.server`: the control server on a Unix socket.
- :mod:`behavior.daemon.store`: the results store (one directory per run).
- :mod:`behavior.daemon.schedule`: when scheduled templates are due.
- :mod:`behavior.daemon.service`: runs, the one shared probe session, the lifecycle.
- :mod:`behavior.daemon.client`: what ``rba run|status|stop|findings`` use.
"""
