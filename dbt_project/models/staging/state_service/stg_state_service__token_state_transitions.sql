{#- One row per event_id: the first copy by loaded_at, transition_id (macro first_copy). -#}
{{ first_copy(ref('base_state_service__token_state_transitions'), 'event_id', 'loaded_at, transition_id') }}
