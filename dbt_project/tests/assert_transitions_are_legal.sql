{#- Every recorded transition is allowed by the lifecycle (seed lifecycle_transitions,
    generated from state_service/lifecycle.py) and starts where the previous one left the
    token. The state service enforces this, so a row here means a bug or an edit in the log.
    Severity warn: the build goes on so audit_exceptions can report it (a failing error test
    would skip the audit marts downstream). -#}
{{ config(severity='warn') }}

select
    transition_id,
    token_ref,
    token_version,
    from_state,
    to_state,
    previous_to_state

from {{ ref('audit_token_transitions') }}
where not is_legal_transition
    or not follows_previous_state
