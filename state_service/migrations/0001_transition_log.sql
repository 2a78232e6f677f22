-- The state service's store: current token state, and the append-only transition log.
--
-- Incremental-read contract (for ingestion): every transition row carries ``xact_id``, the
-- writer's transaction id (pg_current_xact_id()). A reader that takes
-- ``pg_snapshot_xmin(pg_current_snapshot())`` as its upper bound and reads rows with
-- ``low_watermark <= xact_id < xmin`` sees every transaction below xmin committed or aborted,
-- so a transaction that commits late is never skipped: it is simply read by a later run.

create table tokens (
    token_ref   text primary key,
    wallet_id   text not null,
    network     text not null,
    token_type  text not null,
    card_ref    text not null,
    state       text not null,
    version     integer not null check (version >= 1),
    last_hash   char(64) not null,
    created_at  timestamptz not null,
    updated_at  timestamptz not null
);

create table token_state_transitions (
    transition_id bigint generated always as identity primary key,
    token_ref     text not null references tokens (token_ref),
    version       integer not null check (version >= 1),
    event_id      text not null,
    from_state    text,
    to_state      text not null,
    actor         text not null,
    reason_code   text,
    decision      text,
    idv_method    text,
    wallet_id     text not null,
    network       text not null,
    token_type    text not null,
    occurred_at   timestamptz not null,
    recorded_at   timestamptz not null,
    xact_id       xid8 not null default pg_current_xact_id(),
    request_hash  char(64) not null,
    prev_hash     char(64) not null,
    row_hash      char(64) not null,
    constraint token_state_transitions_event_id_key unique (event_id),
    constraint token_state_transitions_token_version_key unique (token_ref, version)
);

create index token_state_transitions_xact_id_idx on token_state_transitions (xact_id);

-- Append-only, enforced by the database itself: UPDATE, DELETE and TRUNCATE are refused.
create function tokenwatch_refuse_change() returns trigger language plpgsql as $$
begin
    raise exception 'token_state_transitions is append-only: % refused', tg_op
        using errcode = 'insufficient_privilege';
end;
$$;

create trigger token_state_transitions_append_only
    before update or delete on token_state_transitions
    for each row execute function tokenwatch_refuse_change();

create trigger token_state_transitions_no_truncate
    before truncate on token_state_transitions
    for each statement execute function tokenwatch_refuse_change();
