{#- One row per request_id: the first copy by loaded_at, source_location (macro first_copy). -#}
{{ first_copy(ref('base_data_lake__apigw_logs'), 'request_id', 'loaded_at, source_location') }}
