"""The privileged assessment daemon (``rba daemon``; operator's guide: docs/daemon.md).

- :mod:`behavior.daemon.config`: the TOML configuration, validated at start and on SIGHUP.
- :mod:`behavior.daemon.schedule`: when scheduled templates are due.
- :mod:`behavior.daemon.protocol`: the control socket's request/response framing.
- :mod:`behavior.daemon.server`: the control server on a root-only Unix socket.
- :mod:`behavior.daemon.client`: what ``rba run|status|stop|findings`` use.
- :mod:`behavior.daemon.store`: the results store (one directory per run).
- :mod:`behavior.daemon.sharing`: the one probe session fanned out to every active run.
- :mod:`behavior.daemon.engine`: the bridge to the assessment core, probes and formats.
- :mod:`behavior.daemon.service`: runs, the lifecycle, signals.
- :mod:`behavior.daemon.logs`, :mod:`behavior.daemon.notify`: journald and systemd.
"""
