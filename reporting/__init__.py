"""What leaves the warehouse for people: today the KPIs as Datadog series, the publication
events, and the dashboards and monitors as code (``reporting.datadog``)."""
