{#- One row per wallet: the wallets seed (generated from the registry, tokenwatch/wallets.py),
    plus any wallet seen in the data but not in it (shown as a custom wallet under its id).
    The wallet marts read the lifecycle marts (dim_token), never the other way round. -#}
with

wallets_seed as (

    select * from {{ ref('wallets') }}

),

tokens as (

    select * from {{ ref('dim_token') }}

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
