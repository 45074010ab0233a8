"""Sources: where a cycle's signals come from (files, directories, Prometheus, pushed tickets, logs
and Alertmanager alerts held in the store). See :class:`opsloop.sources.base.Source`."""
