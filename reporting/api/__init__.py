"""The Custom Reports API (``tokenwatch reports serve``): the semantic layer's metrics over HTTP.

One module per concern: ``app`` (the routes and their OpenAPI), ``auth`` (its read keys),
``access_log`` (every request, for the compliance pack), ``readers`` (running compiled SQL on
the DuckDB read replica, PostgreSQL or Snowflake, bounded), ``requests`` (a query from the URL
or a JSON body), ``pagination`` (the cursor), ``gate`` (freshness and each day's verdict),
``formats`` (JSON, CSV, Parquet, PNG), ``timeline`` (a token's life from PostgreSQL and the
warehouse), ``relations`` (where a mart is), ``server`` (running it).
"""
