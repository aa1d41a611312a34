"""The service shell: Faust agents, topics, tables, settings, metrics and the `interests` CLI."""
