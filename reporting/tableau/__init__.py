"""Tableau: one ``.hyper`` extract per Tableau exposure of the dbt project (``exposures.py``
reads which), written from the marts with only the days the quality gate passed
(``extract.py``), and published to Tableau Server or Cloud (``publish.py``)."""
