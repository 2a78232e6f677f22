"""Publishing KPIs to Datadog: points as gauges (``series``), publication events (``events``),
and the dashboards and monitors that read them, kept as code (``as_code``). ``client`` decides
where it all goes; ``catalog`` lists what may be published."""
