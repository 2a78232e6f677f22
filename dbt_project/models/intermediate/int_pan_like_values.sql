{#- Card-number-like values anywhere in the raw layer's text (the incremental copies of the
    two big tables, every raw copy of the lake's log records, and the small tables through
    staging): one row per cell holding at least one PAN-like run, by the rule of
    tokenwatch/pan.py (pan_like_runs: normalised text, 13-19 digits written contiguously or in
    printed groups, first digit 2-6, Luhn). Only the masked value
    (first six, last four) is kept. Hex digests (prev_hash, row_hash, etag) are not scanned:
    a sha256 or md5 in hex is not free text and has digit runs by chance. The log records are
    read before the staging dedupe (base models): a card number in a re-delivered copy is in
    the warehouse too, and the scan skips the window that picks the first copy.
    On PostgreSQL the query runs without JIT: its estimated cost gets it compiled, and
    compiling its many expressions takes seconds to minutes for a query that runs in less. -#}
{{ config(pre_hook=['set local jit = off'] if target.type == 'postgres' else []) }}
{%- set scans = [
    {'table': 'token_state_transitions', 'model': 'int_token_transitions', 'flagged': true,
     'location': 'source_location', 'observed_at': 'occurred_at', 'token_ref': 'token_ref',
     'wallet_id': 'wallet_id',
     'columns': ['token_ref', 'event_id', 'from_state', 'to_state', 'actor', 'reason_code',
                 'decision', 'idv_method', 'wallet_id', 'network', 'token_type',
                 'source_location']},
    {'table': 'wallet_events', 'model': 'int_wallet_events', 'flagged': true,
     'location': 'source_location', 'observed_at': 'event_time', 'token_ref': 'token_ref',
     'wallet_id': 'wallet_id',
     'columns': ['event_id', 'event_type', 'wallet_id', 'token_ref', 'request_id', 'network',
                 'token_type', 'decision', 'error_code', 'idv_method', 'idv_outcome',
                 'currency', 'merchant_category', 'new_state', 'reason_code', 'actor',
                 'extra_json', 'shard_id', 'sequence_number', 'source_location']},
    {'table': 'apigw_logs', 'model': 'base_data_lake__apigw_logs',
     'location': 'source_location', 'observed_at': 'requested_at', 'token_ref': 'null',
     'wallet_id': 'wallet_id',
     'columns': ['request_id', 'route', 'wallet_id', 'extra_json', 'source_location']},
    {'table': 'lambda_logs', 'model': 'base_data_lake__lambda_logs',
     'location': 'source_location', 'observed_at': 'invoked_at', 'token_ref': 'null',
     'wallet_id': 'null',
     'columns': ['request_id', 'function_name', 'error_message', 'extra_json',
                 'source_location']},
    {'table': 'quarantine', 'model': 'stg_ingestion__quarantine',
     'location': 'source_location', 'observed_at': 'loaded_at', 'token_ref': 'null',
     'wallet_id': 'null',
     'columns': ['source_location', 'raw_text', 'reason']},
    {'table': '_s3_manifest', 'model': 'stg_ingestion__s3_manifest',
     'location': 'manifest_entry_id', 'observed_at': 'loaded_at', 'token_ref': 'null',
     'wallet_id': 'null',
     'columns': ['s3_key', 'duplicate_of_key']},
    {'table': '_ingest_state', 'model': 'stg_ingestion__ingest_state',
     'location': 'state_key', 'observed_at': 'updated_at', 'token_ref': 'null',
     'wallet_id': 'null',
     'columns': ['state_key', 'state_value']},
] -%}

with

{% for scan in scans %}
rows_with_digits_{{ loop.index }} as (

    {#- a cheap row-level filter first: rows whose text may hold a PAN-like run in any
        scanned column (pan_candidate_pattern; the incremental copies of the big tables flag
        them as they are loaded) -#}
    select * from {{ ref(scan.model) }}
    {% if scan.get('flagged') -%}
    where has_pan_candidate
    {%- else -%}
    where {{ regexp_contains(text_columns_joined(scan.columns), pan_candidate_pattern()) }}
    {%- endif %}

),
{% endfor %}

cells as (

    {% for scan in scans %}
    {%- set cte = 'rows_with_digits_' ~ loop.index %}
    {%- for column in scan.columns %}
    select
        '{{ scan.table }}' as source_table,
        cast({{ scan.location }} as {{ dbt.type_string() }}) as source_location,
        '{{ column }}' as column_name,
        cast({{ column }} as {{ dbt.type_string() }}) as text_value,
        {{ scan.observed_at }} as observed_at,
        cast({{ scan.token_ref }} as {{ dbt.type_string() }}) as token_ref,
        cast({{ scan.wallet_id }} as {{ dbt.type_string() }}) as wallet_id
    from {{ cte }}
    where {{ regexp_contains(column, pan_candidate_pattern()) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

pan_like as (

    {{ pan_like_runs('cells', 'text_value',
        ['source_table', 'source_location', 'column_name', 'observed_at', 'token_ref',
         'wallet_id']) }}

),

final as (

    select
        {{ composite_key(['source_table', 'source_location', 'column_name']) }} as finding_id,
        source_table,
        source_location,
        column_name,
        min(observed_at) as observed_at,
        max(token_ref) as token_ref,
        max(wallet_id) as wallet_id,
        count(*) as pan_like_runs,
        min({{ mask_pan('pan_digits') }}) as masked_value

    from pan_like
    group by source_table, source_location, column_name

)

select * from final
