-- The write path in one server-side call (issue 17): state_service/store.py calls these.
--
-- lifecycle_transitions  the legal (from_state, to_state) pairs. Data, not code: migrate.py
--                        rewrites it from state_service/lifecycle.py (the one definition) on
--                        every run, so a hand edit lasts only until the next migrate
--                        (tests/state_service/test_write_functions.py: the drift test).
-- tokenwatch_canonical   the hash chain's canonical row (state_service/chain.py) in SQL.
-- tokenwatch_prepare_transition
--                        lock the token, look up the event_id, check legality against
--                        lifecycle_transitions, read the row's identity, transaction and clock,
--                        and hash the row: everything but the seal, in one call. It writes
--                        nothing: the row's seal (row_mac) is an HMAC under a key PostgreSQL
--                        never sees, so the service computes it from what this returns and
--                        sends it with the insert and the COMMIT (the second and last message
--                        of the transaction: tokenwatch_apply_transition).
-- tokenwatch_prepare_create, tokenwatch_apply_create
--                        the same for a token's creation (its first row and the tokens row).
--
-- The functions run with the caller's rights (SECURITY INVOKER): they can do nothing the
-- service role could not do with plain statements; EXECUTE is granted by migrate.py.

create table lifecycle_transitions (
    from_state text not null,
    to_state   text not null,
    primary key (from_state, to_state)
);

create function tokenwatch_ts(ts timestamptz) returns text
language sql immutable parallel safe as $$
    select to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

create function tokenwatch_canonical(
    token_ref text, version integer, event_id text, from_state text, to_state text,
    actor text, reason_code text, decision text, idv_method text, wallet_id text,
    network text, token_type text, occurred_at timestamptz, recorded_at timestamptz,
    prev_hash text) returns text
language sql immutable parallel safe as $$
    select coalesce(token_ref, '') || '|' || coalesce(version::text, '') || '|'
        || coalesce(event_id, '') || '|' || coalesce(from_state, '') || '|'
        || coalesce(to_state, '') || '|' || coalesce(actor, '') || '|'
        || coalesce(reason_code, '') || '|' || coalesce(decision, '') || '|'
        || coalesce(idv_method, '') || '|' || coalesce(wallet_id, '') || '|'
        || coalesce(network, '') || '|' || coalesce(token_type, '') || '|'
        || coalesce(tokenwatch_ts(occurred_at), '') || '|'
        || coalesce(tokenwatch_ts(recorded_at), '') || '|' || coalesce(prev_hash, '')
$$;

-- outcome: 'new' (a row is ready: seal it and apply it), 'replay' (this event_id with this
-- request was recorded before: state/version/... are that row's), 'event_id_conflict',
-- 'token_not_found', 'illegal_transition' (state is the token's current state).
create function tokenwatch_prepare_transition(
    p_token_ref text, p_event_id text, p_to_state text, p_actor text, p_reason_code text,
    p_decision text, p_idv_method text, p_occurred_at timestamptz, p_request_hash text,
    out outcome text, out state text, out version integer, out from_state text,
    out wallet_id text, out network text, out token_type text, out actor text,
    out transition_id bigint, out xact_id text, out recorded_at timestamptz,
    out prev_hash text, out row_hash text)
language plpgsql as $$
#variable_conflict use_column
declare
    tok record;
    ev record;
begin
    select t.state, t.version, t.last_hash, t.wallet_id, t.network, t.token_type into tok
    from tokens t where t.token_ref = p_token_ref for update;
    select e.token_ref, e.request_hash, e.to_state, e.version, e.wallet_id, e.from_state,
           e.actor into ev
    from token_state_transitions e where e.event_id = p_event_id;
    if tok.state is null then
        outcome := case when ev.token_ref is null then 'token_not_found'
                        else 'event_id_conflict' end;
        return;
    end if;
    if ev.token_ref is not null then
        if ev.token_ref <> p_token_ref or ev.request_hash <> p_request_hash then
            outcome := 'event_id_conflict';
            return;
        end if;
        outcome := 'replay';
        state := ev.to_state; version := ev.version; from_state := ev.from_state;
        wallet_id := ev.wallet_id; actor := ev.actor;
        return;
    end if;
    if not exists (select 1 from lifecycle_transitions l
                   where l.from_state = tok.state and l.to_state = p_to_state) then
        outcome := 'illegal_transition';
        state := tok.state;
        return;
    end if;
    outcome := 'new';
    state := p_to_state; version := tok.version + 1; from_state := tok.state;
    wallet_id := tok.wallet_id; network := tok.network; token_type := tok.token_type;
    actor := p_actor; prev_hash := tok.last_hash;
    transition_id := nextval('token_state_transitions_transition_id_seq'::regclass);
    xact_id := pg_current_xact_id()::text;
    recorded_at := clock_timestamp();
    row_hash := encode(sha256(convert_to(tokenwatch_canonical(
        p_token_ref, version, p_event_id, from_state, p_to_state, p_actor, p_reason_code,
        p_decision, p_idv_method, wallet_id, network, token_type, p_occurred_at,
        recorded_at, prev_hash), 'UTF8')), 'hex');
end;
$$;

create function tokenwatch_apply_transition(
    p_transition_id bigint, p_xact_id text, p_token_ref text, p_version integer,
    p_event_id text, p_from_state text, p_to_state text, p_actor text, p_reason_code text,
    p_decision text, p_idv_method text, p_wallet_id text, p_network text, p_token_type text,
    p_occurred_at timestamptz, p_recorded_at timestamptz, p_request_hash text,
    p_prev_hash text, p_row_hash text, p_key_id text, p_row_mac text) returns void
language plpgsql as $$
begin
    insert into token_state_transitions (transition_id, xact_id, token_ref, version,
        event_id, from_state, to_state, actor, reason_code, decision, idv_method, wallet_id,
        network, token_type, occurred_at, recorded_at, request_hash, prev_hash, row_hash,
        key_id, row_mac)
    overriding system value values (p_transition_id, p_xact_id::xid8, p_token_ref,
        p_version, p_event_id, p_from_state, p_to_state, p_actor, p_reason_code, p_decision,
        p_idv_method, p_wallet_id, p_network, p_token_type, p_occurred_at, p_recorded_at,
        p_request_hash, p_prev_hash, p_row_hash, p_key_id, p_row_mac);
    update tokens set state = p_to_state, version = p_version, last_hash = p_row_hash,
        updated_at = p_recorded_at
    where token_ref = p_token_ref;
end;
$$;

-- outcome: 'new', 'replay', 'event_id_conflict', 'token_exists'. p_state: the lifecycle's
-- initial state (lifecycle.INITIAL_STATE, passed by the service). Creators of one token_ref
-- queue on a transaction-scoped advisory lock, so 'new' means the insert cannot collide.
create function tokenwatch_prepare_create(
    p_token_ref text, p_event_id text, p_actor text, p_wallet_id text, p_network text,
    p_token_type text, p_occurred_at timestamptz, p_request_hash text, p_state text,
    out outcome text, out state text, out version integer, out from_state text,
    out wallet_id text, out actor text, out transition_id bigint, out xact_id text,
    out recorded_at timestamptz, out row_hash text)
language plpgsql as $$
#variable_conflict use_column
declare
    ev record;
begin
    perform pg_advisory_xact_lock(hashtextextended('tokenwatch.token:' || p_token_ref, 0));
    select e.token_ref, e.request_hash, e.to_state, e.version, e.wallet_id, e.from_state,
           e.actor into ev
    from token_state_transitions e where e.event_id = p_event_id;
    if ev.token_ref is not null then
        if ev.token_ref <> p_token_ref or ev.request_hash <> p_request_hash then
            outcome := 'event_id_conflict';
            return;
        end if;
        outcome := 'replay';
        state := ev.to_state; version := ev.version; from_state := ev.from_state;
        wallet_id := ev.wallet_id; actor := ev.actor;
        return;
    end if;
    if exists (select 1 from tokens t where t.token_ref = p_token_ref) then
        outcome := 'token_exists';
        return;
    end if;
    outcome := 'new';
    state := p_state; version := 1; wallet_id := p_wallet_id; actor := p_actor;
    transition_id := nextval('token_state_transitions_transition_id_seq'::regclass);
    xact_id := pg_current_xact_id()::text;
    recorded_at := clock_timestamp();
    row_hash := encode(sha256(convert_to(tokenwatch_canonical(
        p_token_ref, 1, p_event_id, null, p_state, p_actor, null, null, null,
        p_wallet_id, p_network, p_token_type, p_occurred_at, recorded_at,
        repeat('0', 64)), 'UTF8')), 'hex');
end;
$$;

create function tokenwatch_apply_create(
    p_transition_id bigint, p_xact_id text, p_token_ref text, p_event_id text, p_actor text,
    p_wallet_id text, p_network text, p_token_type text, p_card_ref text,
    p_occurred_at timestamptz, p_recorded_at timestamptz, p_request_hash text,
    p_row_hash text, p_key_id text, p_row_mac text, p_attrs_mac text, p_state text)
    returns void
language plpgsql as $$
begin
    insert into tokens (token_ref, wallet_id, network, token_type, card_ref, state, version,
        last_hash, created_at, updated_at, key_id, attrs_mac)
    values (p_token_ref, p_wallet_id, p_network, p_token_type, p_card_ref, p_state,
        1, p_row_hash, p_recorded_at, p_recorded_at, p_key_id, p_attrs_mac);
    insert into token_state_transitions (transition_id, xact_id, token_ref, version,
        event_id, from_state, to_state, actor, wallet_id, network, token_type, occurred_at,
        recorded_at, request_hash, prev_hash, row_hash, key_id, row_mac)
    overriding system value values (p_transition_id, p_xact_id::xid8, p_token_ref, 1,
        p_event_id, null, p_state, p_actor, p_wallet_id, p_network, p_token_type,
        p_occurred_at, p_recorded_at, p_request_hash, repeat('0', 64), p_row_hash, p_key_id,
        p_row_mac);
end;
$$;

revoke all on function tokenwatch_prepare_transition, tokenwatch_apply_transition,
    tokenwatch_prepare_create, tokenwatch_apply_create from public;
