{#- One row per wallet: the wallets seed (generated from the registry, tokenwatch/wallets.py),
    plus any wallet seen in the data but not in it (shown as a custom wallet under its id).
    Activity is counted per token as dim_token counts it (a token with transitions, under the
    wallet of its current state), from the intermediate models: the wallet marts do not depend
    on the lifecycle marts, which read this one. -#}
with

wallets_seed as (

    select * from {{ ref('wallets') }}

),

current_state as (

    select token_ref, wallet_id from {{ ref('int_token_current_state') }}

),

transition_activity as (

    select
        token_ref,
        min(occurred_at) as first_transition_at,
        max(occurred_at) as last_transition_at,
        {{ count_if("to_state = 'TokenRequested'") }} as token_requested_transitions

    from {{ ref('int_token_transitions') }}
    group by token_ref

),

event_activity as (

    select
        token_ref,
        min(event_time) as first_event_at,
        max(event_time) as last_event_at

    from {{ ref('int_wallet_events') }}
    group by token_ref

),

tokens as (

    select
        current_state.wallet_id,
        transition_activity.token_requested_transitions > 0 as has_token_requested,
        case
            when event_activity.first_event_at < transition_activity.first_transition_at
                then event_activity.first_event_at
            else transition_activity.first_transition_at
        end as first_seen_at,
        case
            when event_activity.last_event_at > transition_activity.last_transition_at
                then event_activity.last_event_at
            else transition_activity.last_transition_at
        end as last_seen_at

    from current_state
    inner join transition_activity
        on current_state.token_ref = transition_activity.token_ref
    left join event_activity
        on current_state.token_ref = event_activity.token_ref

),

observed as (

    select
        wallet_id,
        count(*) as tokens_seen,
        {{ count_if('has_token_requested') }} as tokens_requested,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at

    from tokens
    group by wallet_id

),

all_wallets as (

    select wallet_id from wallets_seed
    union
    select wallet_id from observed

),

final as (

    select
        all_wallets.wallet_id,
        coalesce(wallets_seed.display_name, all_wallets.wallet_id) as display_name,
        -- every native wallet is registered, so a wallet missing from the seed is custom
        coalesce(wallets_seed.wallet_kind, 'custom') as wallet_kind,
        wallets_seed.visa_token_requestor_id,
        wallets_seed.mastercard_token_requestor_id,
        wallets_seed.wallet_id is not null as is_in_wallet_seed,
        observed.wallet_id is not null as has_activity,
        coalesce(observed.tokens_seen, 0) as tokens_seen,
        coalesce(observed.tokens_requested, 0) as tokens_requested,
        observed.first_seen_at,
        observed.last_seen_at

    from all_wallets
    left join wallets_seed
        on all_wallets.wallet_id = wallets_seed.wallet_id
    left join observed
        on all_wallets.wallet_id = observed.wallet_id

)

select * from final
