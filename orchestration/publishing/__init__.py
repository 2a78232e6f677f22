"""Publishing KPIs to Datadog: points as gauges (series), publication events, and the
dashboards and monitors that read them, kept as code (as_code). ``client.resolve`` decides
where it all goes; ``catalog`` lists what may be published.
"""

from orchestration.publishing.as_code import Pushed, push
from orchestration.publishing.catalog import KPI_METRICS, TAG_KEYS
from orchestration.publishing.client import datadog_options
from orchestration.publishing.events import publication_done, publication_withheld
from orchestration.publishing.series import KpiPoint, PublishResult, publish

__all__ = ["KPI_METRICS", "TAG_KEYS", "KpiPoint", "PublishResult", "Pushed", "datadog_options",
           "publication_done", "publication_withheld", "publish", "push"]
