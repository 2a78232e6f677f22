{#- One row per event_id: the first copy by loaded_at, arrived_at, source_location (macro first_copy). -#}
{{ first_copy(ref('base_wallet_stream__wallet_events'), 'event_id', 'loaded_at, arrived_at, source_location') }}
